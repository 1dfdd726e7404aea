import type { QueryKey } from "@tanstack/react-query";
import type { RealtimeEvent } from "@infinitescribe/realtime";

/** TanStack Query keys of the data realtime events change. */
export const queryKeys = {
  novels: ["novels"] as const,
  /** No event announces an invitation (the invited user's stream gets nothing): refetched. */
  invitations: ["invitations"] as const,
  novel: (novelId: string) => ["novel", novelId] as const,
  chapter: (novelId: string, chapterId: string) => ["chapter", novelId, chapterId] as const,
  task: (taskId: string) => ["task", taskId] as const,
  novelTasks: (novelId: string) => ["novel-tasks", novelId] as const,
};

/** The caches a content event makes stale: only those it names, never everything. */
export function keysToInvalidate(event: RealtimeEvent): QueryKey[] {
  const novelId = event.novel_id ?? null;
  switch (event.type) {
    case "content.novel-created":
      return novelId ? [queryKeys.novels, queryKeys.novel(novelId)] : [queryKeys.novels];
    case "content.chapter-updated": {
      if (!novelId) return [];
      return [
        queryKeys.novel(novelId),
        ...event.chapters.map((chapter) => queryKeys.chapter(novelId, chapter.chapter_id)),
      ];
    }
    case "workflow.status-changed": {
      const id = novelId ?? event.workflow_id;
      return id ? [queryKeys.novels, queryKeys.novel(id)] : [queryKeys.novels];
    }
    default:
      return [];
  }
}
