/** Failure detection: phi-accrual liveness per component, proposed through the log by the leader. */
export {
  createDetectorSet,
  type DetectorSet,
  type DetectorSetOptions,
  defaultDetectorSetOptions,
  type LivenessTransition,
} from "./detector-set.ts";
export {
  createFailureDetector,
  desiredStatus,
  type FailureDetector,
  type FailureDetectorOptions,
  type FailureDetectorStats,
  LIVENESS_REASON_PREFIX,
} from "./failure-detector.ts";
export {
  createLivenessTracker,
  defaultLivenessOptions,
  type LivenessOptions,
  type LivenessState,
  type LivenessTracker,
  type LivenessVerdict,
  validateLivenessOptions,
} from "./liveness.ts";
export { createIntervalStats, type IntervalStats, phiOf } from "./phi.ts";
