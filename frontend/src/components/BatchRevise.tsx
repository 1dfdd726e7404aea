import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import type { Chapter } from "../api/client";
import { useApi } from "../api/context";
import { batchProblem, toggleAll, toggleChapter } from "../batch/batchSelection";
import { TaskProgressBar } from "./TaskProgressBar";

/**
 * Revise several chapters of a finished novel at once: pick chapters, start one task. Its
 * chapter updates arrive merged (a few chapters per `content.chapter-updated`), so the chapter
 * list refreshes a few times, not once per chapter.
 */
export function BatchRevise({ novelId, chapters }: { novelId: string; chapters: readonly Chapter[] }) {
  const api = useApi();
  const [selected, setSelected] = useState<number[]>([]);
  const [instructions, setInstructions] = useState("");
  const [taskId, setTaskId] = useState<string | null>(null);
  const start = useMutation({
    mutationFn: () => api.reviseChapters(novelId, selected, instructions),
    onSuccess: ({ task_id }) => {
      setTaskId(task_id);
      setSelected([]);
    },
  });
  const problem = batchProblem(selected);
  const numbers = chapters.map((chapter) => chapter.number);
  return (
    <section className="batch-revise" aria-labelledby="batch-revise-heading">
      <h2 id="batch-revise-heading">Revise several chapters</h2>
      <fieldset>
        <legend>Chapters</legend>
        <label>
          <input
            type="checkbox"
            checked={numbers.length > 0 && numbers.every((n) => selected.includes(n))}
            onChange={() => setSelected((current) => toggleAll(current, numbers))}
          />{" "}
          All
        </label>
        {chapters.map((chapter) => (
          <label key={chapter.id}>
            <input
              type="checkbox"
              checked={selected.includes(chapter.number)}
              onChange={() => setSelected((current) => toggleChapter(current, chapter.number))}
              aria-label={`Select chapter ${chapter.number} for revision`}
            />{" "}
            {chapter.number}
          </label>
        ))}
      </fieldset>
      <label>
        Instructions{" "}
        <input
          type="text"
          value={instructions}
          maxLength={2000}
          onChange={(event) => setInstructions(event.target.value)}
          placeholder="tighten the prose"
        />
      </label>
      <button
        type="button"
        onClick={() => start.mutate()}
        disabled={problem !== null || start.isPending}
        title={problem ?? undefined}
      >
        Revise {selected.length || ""} selected
      </button>
      {start.error ? <span role="alert">{start.error.message}</span> : null}
      {taskId ? <TaskProgressBar taskId={taskId} title="Revising the selected chapters" cancellable /> : null}
    </section>
  );
}
