import { useMutation } from "@tanstack/react-query";
import { useApi } from "../api/context";
import { ConfirmButton } from "./ConfirmButton";

/** The novel owner's "Cancel workflow": every open step of the novel stops, after a confirmation. */
export function CancelWorkflow({ novelId, title }: { novelId: string; title: string }) {
  const api = useApi();
  const cancel = useMutation({ mutationFn: () => api.cancelNovel(novelId) });
  return (
    <div className="workflow-actions">
      <ConfirmButton
        label={cancel.isSuccess ? "Cancelling…" : "Cancel workflow"}
        question={`Stop writing “${title}”? Chapters already written are kept; the others are not written.`}
        confirmLabel="Cancel workflow"
        disabled={cancel.isPending || cancel.isSuccess}
        onConfirm={() => cancel.mutate()}
      />
      {cancel.error ? (
        <span className="task-cancel-error" role="alert">
          Could not cancel: {cancel.error.message}
        </span>
      ) : null}
    </div>
  );
}
