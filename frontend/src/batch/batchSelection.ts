/**
 * The chapters a writer picked for one batch revision: pure, so the rules are tested without a
 * browser. The API refuses an empty batch, more than {@link MAX_BATCH_CHAPTERS} chapters and a
 * chapter named twice; the selection never holds those.
 */

/** The most chapters one batch may name (the API's limit, `MAX_BATCH_CHAPTERS`). */
export const MAX_BATCH_CHAPTERS = 30;

/** The selection with `number` added, or removed if it was there; sorted, each once. */
export function toggleChapter(selected: readonly number[], number: number): number[] {
  if (selected.includes(number)) return selected.filter((n) => n !== number);
  return [...selected, number].sort((a, b) => a - b);
}

/** Every chapter of the novel (up to the limit), or none if all were selected already. */
export function toggleAll(selected: readonly number[], chapterNumbers: readonly number[]): number[] {
  const all = [...new Set(chapterNumbers)].sort((a, b) => a - b).slice(0, MAX_BATCH_CHAPTERS);
  return all.every((n) => selected.includes(n)) ? [] : all;
}

/** Why the batch cannot start yet, or null when it can. */
export function batchProblem(selected: readonly number[]): string | null {
  if (selected.length === 0) return "Select at least one chapter";
  if (selected.length > MAX_BATCH_CHAPTERS) return `Select at most ${MAX_BATCH_CHAPTERS} chapters`;
  return null;
}
