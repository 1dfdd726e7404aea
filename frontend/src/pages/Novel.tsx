import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useParams } from "react-router";
import type { Api } from "../api/client";
import { TaskProgressBar } from "../components/TaskProgressBar";
import { useRealtime } from "../hooks/RealtimeProvider";
import { queryKeys } from "../realtime/queryKeys";

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

/** A novel: its workflow and step progress bars, and its chapters as they are written. */
export function Novel() {
  const { novelId = "" } = useParams();
  const { api, hub } = useRealtime();
  const novel = useQuery({ queryKey: queryKeys.novel(novelId), queryFn: () => api.novel(novelId) });
  const history = useQuery({
    queryKey: queryKeys.novelTasks(novelId),
    queryFn: () => novelTasks(api, novelId),
    staleTime: Number.POSITIVE_INFINITY,
  });
  const [liveTasks, setLiveTasks] = useState<string[]>([]);

  useEffect(() => {
    setLiveTasks([]);
    return hub.onEvent((event) => {
      if (event.novel_id !== novelId || event.type !== "task.progress-started" || !event.task_id) {
        return;
      }
      const taskId = event.task_id;
      setLiveTasks((list) => (list.includes(taskId) ? list : [...list, taskId]));
    });
  }, [hub, novelId]);

  if (novel.isPending) return <p>Loading…</p>;
  if (novel.error) return <p role="alert">{novel.error.message}</p>;
  const workflow = novel.data.task_id;
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
        {workflow ? <TaskProgressBar taskId={workflow} title="Whole novel" /> : null}
        {steps.map((taskId) => (
          <TaskProgressBar key={taskId} taskId={taskId} notify={false} />
        ))}
      </section>
      <section aria-labelledby="chapters-heading">
        <h2 id="chapters-heading">Chapters</h2>
        {novel.data.chapters.length === 0 ? <p>No chapter written yet.</p> : null}
        <ol className="chapters" aria-label="Chapters">
          {novel.data.chapters.map((chapter) => (
            <li key={chapter.id} data-testid="chapter">
              <h3>
                {chapter.number}. {chapter.title}
              </h3>
              <p>{chapter.summary}</p>
            </li>
          ))}
        </ol>
      </section>
    </article>
  );
}
