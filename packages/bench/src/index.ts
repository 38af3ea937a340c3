/*
 * @nmp/bench: the benchmarks' shared pieces (never part of a release). `chain.ts` starts the measured chain
 * on the testkit's harness; `lib.ts` has the processes, /proc readings, the load worker and the tables.
 * The benchmark programs beside them (run.ts, compare-bare.ts, ab.ts, ...; compiled to dist/src/) import these.
 */
export * from './chain.js';
export * from './lib.js';
