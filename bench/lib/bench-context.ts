// What every group of the benchmark gets (settings, shared access tokens, a log) and returns.
import type { BenchAlgorithm, TokenMaterial } from "./access-tokens.js";

/** The groups of `npm run bench`, in run order; `profile` runs only when asked for. */
export const GROUP_NAMES = ["verify", "routes", "refresh", "login", "memory", "profile"] as const;
export type GroupName = (typeof GROUP_NAMES)[number];

/** The stores the refresh group can use. */
export const BENCH_STORES = ["sqlite", "postgres", "mysql"] as const;
export type BenchStore = (typeof BENCH_STORES)[number];

/** Durations and sizes of one run; every wait is bounded by them. */
export interface BenchSettings {
  /** Memory group runs its full 3 minutes (default: 2). */
  readonly full: boolean;
  /** Everything shortened to check that the suite works, figures meaningless. */
  readonly quick: boolean;
  readonly verify: { readonly warmMs: number; readonly roundMs: number; readonly rounds: number };
  readonly routes: {
    readonly warmSeconds: number;
    readonly seconds: number;
    readonly rounds: number;
    readonly connections: number;
  };
  readonly refresh: {
    readonly warmSeconds: number;
    readonly seconds: number;
    readonly rounds: number;
    readonly graceSeconds: number;
    readonly connections: number;
    readonly stores: readonly BenchStore[];
  };
  readonly login: { readonly seconds: number; readonly rounds: number };
  readonly memory: { readonly seconds: number };
  /** Scratch directory of this run (token files, SQLite files, profiles). */
  readonly workDir: string;
}

/** A ratio the issue sets a goal for. */
export interface GoalRow {
  readonly path: string;
  readonly tessera: string;
  readonly reference: string;
  /** Tessera ÷ reference (or the measured value for absolute goals). */
  readonly ratio: number;
  /** The same ratio per CPU-second of the server (or thread): robust to other load on the machine. */
  readonly ratioPerCpu?: number;
  /** e.g. "≥ 0.8×" */
  readonly goal: string;
  readonly verdict: string;
  /** {@link verdict} on {@link ratioPerCpu}. */
  readonly verdictPerCpu?: string;
}

/** What a group hands back for docs/benchmarks.md. */
export interface GroupResult {
  readonly name: GroupName;
  readonly title: string;
  /** The group's section: method, tables, ratios. */
  readonly markdown: string;
  readonly goals: readonly GoalRow[];
}

/** What a group gets. */
export interface BenchContext {
  readonly settings: BenchSettings;
  /** Access tokens issued by Tessera, one per algorithm, shared by the groups of a run. */
  tokens(): Promise<ReadonlyMap<BenchAlgorithm, TokenMaterial>>;
  log(message: string): void;
}
