/**
 * Public surface of the failure predictor (coordinator/src/predict).
 * The command module (`understudy predict`) is main.ts, wired by the CLI.
 */
export type { DemandForecast, DemandForecaster, DemandForecasterOptions } from "./demand.ts";
export { createDemandForecaster } from "./demand.ts";
export type { ExtractorOptions } from "./extractor.ts";
export { FEATURE_NAMES, FEATURE_SET_VERSION } from "./extractor.ts";
export type { GbtTrainer, GbtTrainerOptions, RetrainRequest } from "./gbt-worker.ts";
export { createGbtTrainer } from "./gbt-worker.ts";
export type { PredictorModel, StackWeights, Thresholds } from "./model.ts";
export {
  deserializeModel,
  MODEL_FORMAT_VERSION,
  ModelFormatError,
  serializeModel,
} from "./model.ts";
export { DEFAULT_MODEL_FILE, ModelFileError, readModelFile, writeModelFile } from "./model-file.ts";
export type {
  LabelKind,
  OnlineLearningOptions,
  Prediction,
  Predictor,
  PredictorOptions,
  ThresholdControlOptions,
  TopFeature,
  TrainingSnapshot,
} from "./predictor.ts";
export { createPredictor } from "./predictor.ts";
export type { RetrainPolicy } from "./train.ts";
export { createStabilityOnlyModel, retrainDue, retrainModel } from "./train.ts";
export type { MetricSample, MetricWindow } from "./window.ts";
export { createMetricWindow } from "./window.ts";
