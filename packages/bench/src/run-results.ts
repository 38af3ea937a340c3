// The shapes of `npm run bench`'s measurements (run.ts), which compare-bare.ts reports on too, and which
// bench-results/run-<stamp>/results.json holds (read back by --report-from).
import type { LoadResult, MachineInfo, Memory } from './lib.js';

/** One measured load of a cell: the load worker's result and the CPU the chain's processes used meanwhile. */
export interface CellRun extends LoadResult {
  /** CPU seconds (user + system) per process name during the load. */
  readonly cpuS: Record<string, number>;
  /** The system part of cpuS. */
  readonly sysS: Record<string, number>;
  /** Cores' worth of CPU that neither the chain nor the load generator used while the cell ran. */
  readonly otherCpuShare: number;
  readonly waitedForQuietS: number;
  /** The 1-minute load average after the cell. */
  readonly loadavg: number;
}

/** A cell (target, path, connection count) while it is measured. */
export interface RawCell {
  readonly target: string;
  readonly path: string;
  readonly connections: number;
  readonly runs: CellRun[];
}

/** A measured cell with its medians. */
export interface Cell extends RawCell {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly otherCpuShare: number;
  readonly loadavg: number;
  readonly failures: number;
  readonly cpuUsPerReq: Record<string, number>;
  readonly sysUsPerReq: Record<string, number>;
  readonly loadgenUsPerReq: number;
  /** chain cells: the median of the same-run ratios chain req/s ÷ direct req/s. */
  ratio?: number;
}

export interface BenchResults {
  /** By `${target}|${path}|${connections}`. */
  readonly cells: Record<string, Cell>;
  readonly memory: {
    idle?: Record<string, Memory>;
    afterLoad?: Record<string, Memory>;
  };
}

/** What the report needs to say about how the run was made. */
export interface RunContext {
  readonly machine: MachineInfo;
  readonly results: BenchResults;
  readonly command: string;
  readonly date: string;
  readonly elapsedS: number;
}
