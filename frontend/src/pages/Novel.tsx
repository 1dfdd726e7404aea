import { useMutation, useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useParams } from "react-router";
import type { Api } from "../api/client";
import { useAuth } from "../auth/session";
import { CancelWorkflow } from "../components/CancelWorkflow";
import { BatchRevise } from "../components/BatchRevise";
import { TaskProgressBar } from "../components/TaskProgressBar";
import { WorkflowProgressBar } from "../components/WorkflowProgressBar";
import { useToast } from "../components/Toasts";
import { useRealtime } from "@infinitescribe/realtime";
import { useApi } from "../api/context";
import { queryKeys } from "../api/queryKeys";

/** The tasks of one novel found in the user's retained history, oldest first. */
async function novelTasks(api: Api, novelId: string): Promise<string[]> {
  const found: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page += 1) {
    const result = await api.history(cursor, 1000);
    for (const event of result.events) {
      if (event.novel_id === novelId && event.type === "task.progress-started" && event.task_id) {
        if (!found.includes(event.task_id)) found.push(event.task_id);
      }
    }
    cursor = result.cursor;
    if (!result.has_more) break;
  }
  return found;
}

/** Rewrite one chapter; its task's bar (and its toast) follow below it. */
function ReviseChapter({ novelId, number }: { novelId: string; number: number }) {
  const api = useApi();
  const [taskId, setTaskId] = useState<string | null>(null);
  const revise = useMutation({
    mutationFn: () => api.reviseChapter(novelId, number, ""),
    onSuccess: ({ task_id }) => setTaskId(task_id),
  });
  return (
    <div className="revise">
      <button
        type="button"
        onClick={() => revise.mutate()}
        disabled={revise.isPending}
        aria-label={`Revise chapter ${number}`}
      >
        Revise
      </button>
      {revise.error ? <span role="alert">{revise.error.message}</span> : null}
      {taskId ? <TaskProgressBar taskId={taskId} title={`Revising chapter ${number}`} cancellable /> : null}
    </div>
  );
}

/**
 * A novel: the progress bars of its workflow's tasks and its chapters as they are written. The
 * workflow spans several tasks, so the novel (not each task) toasts when it ends.
 */
export function Novel() {
  const { novelId = "" } = useParams();
  const api = useApi();
  const { hub } = useRealtime();
  const novel = useQuery({ queryKey: queryKeys.novel(novelId), queryFn: () => api.novel(novelId) });
  const history = useQuery({
    queryKey: queryKeys.novelTasks(novelId),
    queryFn: () => novelTasks(api, novelId),
    staleTime: Number.POSITIVE_INFINITY,
  });
  const [liveTasks, setLiveTasks] = useState<string[]>([]);
  const toast = useToast();
  const { session } = useAuth();
  // Read by the event handler; a change must not resubscribe (and forget live tasks).
  const title = useRef<string | undefined>(undefined);
  title.current = novel.data?.title;

  useEffect(() => {
    setLiveTasks([]);
    return hub.onEvent((event) => {
      if (event.novel_id !== novelId) return;
      if (event.type === "task.progress-started" && event.task_id) {
        const taskId = event.task_id;
        setLiveTasks((list) => (list.includes(taskId) ? list : [...list, taskId]));
      }
      if (event.type === "workflow.status-changed") {
        const name = title.current ? `“${title.current}”` : "Your novel";
        if (event.new_status === "done") toast(`${name} is complete`, "success");
        if (event.new_status === "failed") toast(`${name} failed`, "error");
        if (event.new_status === "cancelled") toast(`${name} was cancelled`, "info");
      }
    });
  }, [hub, novelId, toast]);

  if (novel.isPending) return <p>Loading…</p>;
  if (novel.error) return <p role="alert">{novel.error.message}</p>;
  const workflow = novel.data.task_id;
  const owner = novel.data.owner_id === session?.userId;
  const ended = ["done", "failed", "cancelled"].includes(novel.data.status);
  const written = novel.data.chapters.filter((chapter) => chapter.summary).length;
  const steps = [...(history.data ?? []), ...liveTasks].filter(
    (id, index, all) => id !== workflow && all.indexOf(id) === index,
  );
  return (
    <article className="novel" aria-labelledby="novel-title">
      <h1 id="novel-title">{novel.data.title}</h1>
      <p className="premise">{novel.data.premise}</p>
      <p>
        Status:{" "}
        <span className={`pill pill-${novel.data.status}`} data-testid="novel-status">
          {novel.data.status}
        </span>
      </p>
      <section aria-labelledby="tasks-heading">
        <h2 id="tasks-heading">Progress</h2>
        {owner && !ended ? <CancelWorkflow novelId={novelId} title={novel.data.title} /> : null}
        <WorkflowProgressBar workflowId={novelId} />
        {workflow ? <TaskProgressBar taskId={workflow} notify={false} cancellable={owner} /> : null}
        {steps.map((taskId) => (
          <TaskProgressBar key={taskId} taskId={taskId} notify={false} cancellable={owner} />
        ))}
      </section>
      <section aria-labelledby="chapters-heading">
        <h2 id="chapters-heading">Chapters</h2>
        <p data-testid="chapters-written">
          {written} of {novel.data.chapter_count} chapters written
        </p>
        <ol className="chapters" aria-label="Chapters">
          {novel.data.chapters.map((chapter) => (
            <li key={chapter.id} data-testid="chapter" data-status={chapter.status}>
              {chapter.summary ? (
                <>
                  <h3>{chapter.title}</h3>
                  <p>{chapter.summary}</p>
                </>
              ) : (
                <p className="pending">
                  Chapter {chapter.number}: {chapter.status}
                </p>
              )}
              {novel.data.status === "done" ? (
                <ReviseChapter novelId={novelId} number={chapter.number} />
              ) : null}
            </li>
          ))}
        </ol>
      </section>
      {novel.data.status === "done" ? <BatchRevise novelId={novelId} chapters={novel.data.chapters} /> : null}
    </article>
  );
}
