export {
  type ApiKeyConformanceOptions,
  type ApiKeyStoreUnderTest,
  describeApiKeyStoreConformance,
  type OpenApiKeyStore,
} from './conformance/api-keys.js';
export {
  describeHubConformance,
  type HubBackendUnderTest,
  type HubConformanceOptions,
} from './conformance/hub.js';
export {
  type ConformanceOptions,
  describeSessionStoreConformance,
  type OpenStore,
  type StoreUnderTest,
} from './conformance/index.js';
export { describeLeaseConformance, type LeasesUnderTest } from './conformance/leases.js';
export {
  countInputTokens,
  estimateTokens,
  isTitleRequest,
  lastUserText,
  type MessagesRequestBody,
  type MockAnthropic,
  type MockAnthropicOptions,
  type MockClock,
  type MockContentBlock,
  type MockErrorType,
  type MockFailure,
  type MockMessagesRequest,
  type MockOtherRequest,
  type MockOutcome,
  type MockReply,
  type MockReplyFunction,
  type MockRequestKind,
  type MockStep,
  type MockStopReason,
  type MockUsageOverride,
  mockModelEnv,
  startMockAnthropic,
  transcriptText,
  type WireContentBlock,
  type WireMessage,
  type WireUsage,
} from './mock-anthropic/index.js';
export { type RecordedCall, RecordingStore } from './recording-store.js';
export { type SyntheticTurn, type SyntheticTurnOptions, syntheticTurn } from './transcripts.js';
