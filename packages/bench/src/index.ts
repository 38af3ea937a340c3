/*
 * @nmp/bench: the benchmarks' shared pieces (never part of a release). `chain.ts` starts the measured chain
 * on the testkit's harness; `lib.ts` has the processes, /proc readings, the load worker and the tables.
 * The benchmark programs in scripts/bench/*.mjs import these.
 */
export * from './chain.js';
export * from './lib.js';
