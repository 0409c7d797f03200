// The wire contracts between processes: subjects, streams, Redis keys, message schemas, tokens.
export { ensureStreams, streamConfigs } from "./streams.ts";
export { RedisKeys } from "./keys.ts";
export { eraseMessageSchema, eventMessageSchema, feedbackMessageSchema, FeedbackOutcomes } from "./messages.ts";
export { ERASE_EVENT, Streams, Subjects, splitSubject } from "./subjects.ts";
export { signToken, TokenKinds, verifyToken } from "./tokens.ts";

export type { EraseMessage, EventMessage, FeedbackMessage, FeedbackOutcome } from "./messages.ts";
export type { TokenKind, TokenPayload } from "./tokens.ts";
