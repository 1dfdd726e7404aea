/**
 * @infinitescribe/realtime: live task progress and notifications from the InfiniteScribe SSE
 * tier. The React layer (provider and hooks) is thin; everything under `client/` is
 * framework-free and usable on its own.
 */

export {
  type RealtimeProviderProps,
  type RealtimeValue,
  RealtimeProvider,
  useRealtime,
} from "./react/RealtimeProvider.js";
export { type TaskProgress, type TaskProgressOptions, useTaskProgress } from "./react/useTaskProgress.js";
export { useWorkflowProgress, type WorkflowProgressValue } from "./react/useWorkflowProgress.js";
export { type SSEConnection, useSSEConnection } from "./react/useSSEConnection.js";
export {
  type Notifications,
  useContentNotifications,
  useSystemNotifications,
} from "./react/useNotifications.js";

export {
  ApiError,
  apiRequest,
  createRealtimeApi,
  type RealtimeApiOptions,
  type RealtimeClientApi,
  type RequestOptions,
  streamUrl,
  type TokenSource,
} from "./client/api.js";
export { type BrowserHubOptions, createBrowserHub } from "./client/browser.js";
export { type HubOptions, type HubSnapshot, RealtimeHub } from "./client/hub.js";
export {
  type ConnectionListener,
  type ConnectionOptions,
  type EventSourceLike,
  type RealtimeApi,
  RealtimeConnection,
} from "./client/connection.js";
export { type BackoffPolicy, backoffDelay, DEFAULT_BACKOFF } from "./client/backoff.js";
export { progressIntervalFor } from "./client/network.js";
export {
  type NotificationItem,
  type NotificationKind,
  NotificationStore,
  notificationKind,
  type StorageLike,
} from "./client/notifications.js";
export {
  applyEvent,
  emptyView,
  etaSeconds,
  fromSnapshot,
  isTerminal,
  type TaskError,
  taskLabel,
  type TaskView,
} from "./client/taskProgress.js";
export {
  applyWorkflowEvent,
  fromWorkflowEvent,
  type WorkflowState,
  type WorkflowView,
  workflowEtaSeconds,
} from "./client/workflowProgress.js";
export { EVENT_TYPES } from "./client/events.generated.js";
export * from "./client/types.js";
