/**
 * A local mock of the Anthropic Messages API, so agents built on the Claude Agent SDK run offline
 * in tests: `POST /v1/messages` (SSE and JSON), scripted replies and failures, recorded requests.
 */
export { mockModelEnv } from './env.js';
export type { MockAnthropicOptions } from './options.js';
export { isTitleRequest, lastUserText, transcriptText } from './request.js';
export { type MockAnthropic, startMockAnthropic } from './server.js';
export type {
  MessagesRequestBody,
  MockClock,
  MockContentBlock,
  MockErrorType,
  MockFailure,
  MockMessagesRequest,
  MockOtherRequest,
  MockOutcome,
  MockReply,
  MockReplyFunction,
  MockRequestKind,
  MockStep,
  MockStopReason,
  MockUsageOverride,
  WireContentBlock,
  WireMessage,
  WireUsage,
} from './types.js';
export { countInputTokens, estimateTokens } from './usage.js';
