// The OpenAI test server moved to the platform package so every service's tests share it; this
// module keeps the worker's existing imports working.
export {
  type OpenAiTestServer,
  type RecordedChatRequest,
  type ScriptedReply,
  type ScriptedUsage,
  startOpenAiTestServer,
} from '@neuroagent/platform/testing-openai';
