import { type KeyboardEvent, useId, useState } from "react";

/**
 * A button that asks first: a modal dialog with the question, a confirm and a keep button.
 * Escape or "keep" closes it without acting.
 */
export function ConfirmButton({
  label,
  ariaLabel,
  question,
  confirmLabel,
  keepLabel = "Keep going",
  disabled = false,
  onConfirm,
}: {
  label: string;
  ariaLabel?: string;
  question: string;
  confirmLabel: string;
  keepLabel?: string;
  disabled?: boolean;
  onConfirm: () => void;
}) {
  const [open, setOpen] = useState(false);
  const titleId = useId();
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === "Escape") setOpen(false);
  };
  return (
    <>
      <button type="button" className="danger-button" aria-label={ariaLabel} disabled={disabled} onClick={() => setOpen(true)}>
        {label}
      </button>
      {open ? (
        <div className="dialog-backdrop">
          <div className="dialog" role="dialog" aria-modal="true" aria-labelledby={titleId} onKeyDown={onKeyDown}>
            <p id={titleId}>{question}</p>
            <div className="dialog-buttons">
              <button type="button" onClick={() => setOpen(false)}>
                {keepLabel}
              </button>
              <button
                type="button"
                className="danger-button"
                autoFocus
                onClick={() => {
                  setOpen(false);
                  onConfirm();
                }}
              >
                {confirmLabel}
              </button>
            </div>
          </div>
        </div>
      ) : null}
    </>
  );
}
