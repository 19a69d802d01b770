// PostgreSQL: the agent's threads, turns and messages (docs/agent.md). Checked-in migrations are
// append-only.
import { Migration } from '@mikro-orm/migrations';

export class Agent extends Migration {
  override up(): void {
    this.addSql(`create table "threads" (
      "id" varchar(64) not null,
      "owner" varchar(255) not null,
      "title" varchar(255) not null,
      "created_at" timestamptz not null,
      "updated_at" timestamptz not null,
      "active_turn_id" varchar(64) null,
      "active_turn_deadline" timestamptz null,
      "last_turn_id" varchar(64) null,
      "message_count" int not null default 0,
      primary key ("id")
    );`);
    this.addSql('create index "threads_owner_id_idx" on "threads" ("owner", "id" DESC);');
    this.addSql(`create table "turns" (
      "id" varchar(64) not null,
      "thread_id" varchar(64) not null,
      "owner" varchar(255) not null,
      "status" varchar(16) not null,
      "started_at" timestamptz not null,
      "finished_at" timestamptz null,
      "deadline_at" timestamptz not null,
      "error_code" varchar(64) null,
      "error_message" text null,
      "rounds" int not null default 0,
      "stop" varchar(32) null,
      "usage" jsonb null,
      primary key ("id")
    );`);
    this.addSql('create index "turns_thread_started_idx" on "turns" ("thread_id", "started_at" DESC);');
    this.addSql(`create table "messages" (
      "id" varchar(64) not null,
      "thread_id" varchar(64) not null,
      "turn_id" varchar(64) not null,
      "seq" int not null,
      "role" varchar(16) not null,
      "content" text null,
      "tool_calls" jsonb not null default '[]',
      "tool_call_id" varchar(128) null,
      "task_id" varchar(64) null,
      "tool_status" varchar(16) null,
      "truncated" boolean not null default false,
      "usage" jsonb null,
      "created_at" timestamptz not null,
      primary key ("id")
    );`);
    this.addSql(
      'alter table "messages" add constraint "messages_thread_seq_uniq" unique ("thread_id", "seq");',
    );
    this.addSql('create index "messages_turn_idx" on "messages" ("turn_id");');
  }

  override down(): void {
    this.addSql('drop table if exists "messages";');
    this.addSql('drop table if exists "turns";');
    this.addSql('drop table if exists "threads";');
  }
}
