import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { Link, useNavigate } from "react-router";
import { useApi } from "../api/context";
import { queryKeys } from "../api/queryKeys";

/** Novels others invited the user to read: accept to receive and read one, or decline. */
function Invitations() {
  const api = useApi();
  const queryClient = useQueryClient();
  const invitations = useQuery({
    queryKey: queryKeys.invitations,
    queryFn: api.invitations,
    refetchInterval: 60_000,
  });
  const answer = useMutation({
    mutationFn: async ({ novelId, accept }: { novelId: string; accept: boolean }) => {
      if (accept) await api.acceptInvitation(novelId);
      else await api.declineInvitation(novelId);
    },
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: queryKeys.invitations, exact: true });
      void queryClient.invalidateQueries({ queryKey: queryKeys.novels, exact: true });
    },
  });
  if (!invitations.data?.length) return null;
  return (
    <section aria-labelledby="invitations">
      <h2 id="invitations">Invitations</h2>
      {answer.error ? <p role="alert">{answer.error.message}</p> : null}
      <ul className="novel-list" aria-label="Invitations">
        {invitations.data.map((invitation) => (
          <li key={invitation.novel_id}>
            <span>{invitation.title}</span>
            <span>from {invitation.owner_id}</span>
            <button
              type="button"
              disabled={answer.isPending}
              onClick={() => answer.mutate({ novelId: invitation.novel_id, accept: true })}
            >
              Accept
            </button>
            <button
              type="button"
              disabled={answer.isPending}
              onClick={() => answer.mutate({ novelId: invitation.novel_id, accept: false })}
            >
              Decline
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** The writer's novels (refreshed by content events), invitations, and the "new novel" form. */
export function Novels() {
  const api = useApi();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const novels = useQuery({ queryKey: queryKeys.novels, queryFn: api.novels });
  const [title, setTitle] = useState("");
  const [premise, setPremise] = useState("");
  const [chapters, setChapters] = useState(3);
  const create = useMutation({
    mutationFn: () => api.createNovel({ title, premise, chapter_count: chapters }),
    onSuccess: ({ novel_id }) => {
      void queryClient.invalidateQueries({ queryKey: queryKeys.novels, exact: true });
      void navigate(`/novels/${novel_id}`);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <div className="novels">
      <section aria-labelledby="new-novel">
        <h2 id="new-novel">New novel</h2>
        <form onSubmit={submit} className="novel-form">
          <label>
            Title
            <input value={title} onChange={(e) => setTitle(e.target.value)} maxLength={200} required />
          </label>
          <label>
            Premise
            <textarea value={premise} onChange={(e) => setPremise(e.target.value)} maxLength={5000} required />
          </label>
          <label>
            Chapters
            <input
              type="number"
              min={1}
              max={30}
              value={chapters}
              onChange={(e) => setChapters(Number(e.target.value))}
              required
            />
          </label>
          <button type="submit" disabled={create.isPending}>
            Start writing
          </button>
          {create.error ? <p role="alert">{create.error.message}</p> : null}
        </form>
      </section>
      <section aria-labelledby="my-novels">
        <Invitations />
        <h2 id="my-novels">My novels</h2>
        {novels.isPending ? <p>Loading…</p> : null}
        {novels.error ? <p role="alert">{novels.error.message}</p> : null}
        {novels.data?.length === 0 ? <p>No novels yet.</p> : null}
        <ul className="novel-list" aria-label="Novels">
          {novels.data?.map((novel) => (
            <li key={novel.id}>
              <Link to={`/novels/${novel.id}`}>{novel.title}</Link>
              <span className={`pill pill-${novel.status}`}>{novel.status}</span>
              <span>
                {novel.chapter_count} chapter{novel.chapter_count === 1 ? "" : "s"}
              </span>
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}
