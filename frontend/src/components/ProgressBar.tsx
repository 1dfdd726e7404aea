/** The bar itself, shared by task and workflow bars: an accessible progressbar named after
 * what it measures. */
export function ProgressBar({ label, percent }: { label: string; percent: number }) {
  return (
    <div
      role="progressbar"
      aria-label={`${label} progress`}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      className="bar"
    >
      <div className="bar-fill" style={{ width: `${percent}%` }} />
    </div>
  );
}
