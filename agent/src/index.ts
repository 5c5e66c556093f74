/**
 * Public surface of the host agent. Other components (the predict engine,
 * tests, the demo launcher) import from here only.
 */
export { type Agent, type AgentDeps, type AgentStats, createAgent } from "./agent.ts";
export { type Backoff, type BackoffOptions, createBackoff } from "./backoff.ts";
export { type CgroupLimits, createCgroupReader } from "./cgroup.ts";
export { type CommandResult, type CommandRunner, execFileRunner } from "./command-runner.ts";
export {
  type AgentConfig,
  type AgentRole,
  agentRoles,
  defaultBufferBytesMax,
  loadAgentConfig,
  parseAgentConfig,
  type ServiceEntry,
} from "./config.ts";
export {
  type AgentConnection,
  type ConnectionStats,
  createAgentConnection,
} from "./connection.ts";
export { createDirectiveExecutor, type DirectiveExecutor } from "./directives.ts";
export {
  createFixedSampler,
  createProcfsSampler,
  createSystemInformationSampler,
  type HostInfo,
  type HostSampler,
} from "./host-sampler.ts";
export { main } from "./main.ts";
export {
  type AgentSample,
  cpuCoreMetric,
  cpuCoreMetricPrefix,
  type FixedMetricName,
  isMetricName,
  type MetricDefinition,
  type MetricName,
  type MetricUnit,
  metricDefinitions,
  metricNames,
  unitOf,
} from "./metric-names.ts";
export {
  createProbeSet,
  type ProbeResult,
  type ProbeSet,
  parseEncoderProgress,
  parsePackagerStatus,
} from "./probes.ts";
export { createProcessWatcher, type ProcessWatcher } from "./process-watch.ts";
export {
  type BufferedReport,
  createReportBuffer,
  type ReportBuffer,
  type ReportBufferStats,
} from "./report-buffer.ts";
export { openReportStore, type ReportStore } from "./report-journal.ts";
export { createServiceControl, type ServiceControl } from "./service-control.ts";
export { type AgentStream, type AgentTransport, createGrpcAgentTransport } from "./transport.ts";
