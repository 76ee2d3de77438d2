-- chat_records: every finished GymBro exchange (the user's text and the AI
-- coach's reply), delivered by the GymBro API's outbox worker.
--
-- Apply with the Supabase CLI (`supabase db push`) or paste into the SQL
-- editor. Every statement is safe to run again: tables and indexes use
-- IF NOT EXISTS, the policy is dropped and re-created, and grants/revokes
-- are idempotent by nature.
--
-- Who may do what:
--   * service_role (the GymBro API, with the secret key) writes. It has
--     BYPASSRLS, so it needs no policy, only the table grant below.
--   * authenticated (a signed-in app user) may only read their own rows.
--   * anon has no access at all.

create table if not exists public.chat_records (
	-- The GymBro message_id. The API upserts on it (PostgREST
	-- ?on_conflict=id with Prefer: resolution=merge-duplicates), so a record
	-- delivered twice after a retry still lands exactly once.
	id                uuid primary key,
	-- The Supabase Auth uid (auth.users.id) when the user signed in with
	-- Supabase; null for other providers. Deliberately no foreign key to
	-- auth.users: a user deleted from Auth must not block or cascade the
	-- delivery of records already in flight.
	user_id           uuid,
	-- Which identity provider signed the user's token: 'supabase' or
	-- 'firebase' (older app builds), 'oidc'.
	provider          text not null default 'supabase',
	-- The uid exactly as the provider issued it. Firebase uids are not UUIDs,
	-- so they can only live here (with user_id null); for Supabase it equals
	-- user_id::text.
	provider_uid      text not null,
	conversation_id   uuid not null,
	user_message      text not null,
	ai_response       text not null default '',
	-- Only terminal statuses reach this table: 'error' is a failed
	-- generation, 'interrupted' one whose API instance stopped mid-way.
	status            text not null,
	error_code        text,
	model             text,
	prompt_tokens     int,
	completion_tokens int,
	total_tokens      int,
	-- The X-Trace-Id of the request, to find the API's logs for a record.
	trace_id          text,
	-- Extra facts (finish_reason, last_seq, error_message) that are not worth
	-- a column.
	metadata          jsonb not null default '{}'::jsonb,
	-- When the user sent the message and when the reply finished, as the API
	-- saw them; not when the row arrived here (that is synced_at).
	created_at        timestamptz not null,
	completed_at      timestamptz,
	-- When the row first landed. A re-delivery merges the columns the API
	-- sends and leaves this one alone.
	synced_at         timestamptz not null default now(),

	constraint chat_records_status_check
		check (status in ('completed', 'error', 'canceled', 'interrupted')),
	-- A Supabase uid is stored twice; make sure the two never disagree.
	constraint chat_records_user_id_matches_check
		check (user_id is null or user_id::text = provider_uid)
);

comment on table public.chat_records is
	'Finished GymBro exchanges, written by the GymBro API (service role); each user reads only their own rows.';

-- A user's history, newest first, by Supabase uid (what the RLS policy
-- filters on) and by provider uid (Firebase users and admin look-ups).
create index if not exists chat_records_user_created
	on public.chat_records (user_id, created_at desc);
create index if not exists chat_records_provider_uid_created
	on public.chat_records (provider, provider_uid, created_at desc);
-- One conversation in order.
create index if not exists chat_records_conversation_created
	on public.chat_records (conversation_id, created_at);

-- Row-level security: with it enabled and no policy for a role, that role
-- sees no rows and may write none, whatever it was granted.
alter table public.chat_records enable row level security;

-- A signed-in user reads their own rows. auth.uid() is wrapped in a
-- sub-select so PostgreSQL evaluates it once per query instead of once per
-- row (Supabase's RLS performance advice). There is deliberately no
-- insert, update or delete policy: only the service role writes.
drop policy if exists chat_records_select_own on public.chat_records;
create policy chat_records_select_own on public.chat_records
	for select
	to authenticated
	using (user_id = (select auth.uid()));

-- Supabase's default privileges grant everything on new public tables to
-- anon and authenticated; RLS would still hide the rows, but taking the
-- privileges away too means a mistaken policy later cannot open the table
-- for writing or to anonymous callers (defence in depth).
revoke all on table public.chat_records from anon;
revoke all on table public.chat_records from authenticated;
grant select on table public.chat_records to authenticated;
grant all on table public.chat_records to service_role;
