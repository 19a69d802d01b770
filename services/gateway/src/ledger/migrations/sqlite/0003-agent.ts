// SQLite: the agent's threads, turns and messages (docs/agent.md). Checked-in migrations are
// append-only.
import { Migration } from '@mikro-orm/migrations';

export class Agent extends Migration {
  override up(): void {
    this.addSql(`create table "threads" (
      "id" text not null primary key,
      "owner" text not null,
      "title" text not null,
      "created_at" datetime not null,
      "updated_at" datetime not null,
      "active_turn_id" text null,
      "active_turn_deadline" datetime null,
      "last_turn_id" text null,
      "message_count" integer not null default 0
    );`);
    this.addSql('create index "threads_owner_id_idx" on "threads" ("owner", "id" DESC);');
    this.addSql(`create table "turns" (
      "id" text not null primary key,
      "thread_id" text not null,
      "owner" text not null,
      "status" text not null,
      "started_at" datetime not null,
      "finished_at" datetime null,
      "deadline_at" datetime not null,
      "error_code" text null,
      "error_message" text null,
      "rounds" integer not null default 0,
      "stop" text null,
      "usage" json null
    );`);
    this.addSql('create index "turns_thread_started_idx" on "turns" ("thread_id", "started_at" DESC);');
    this.addSql(`create table "messages" (
      "id" text not null primary key,
      "thread_id" text not null,
      "turn_id" text not null,
      "seq" integer not null,
      "role" text not null,
      "content" text null,
      "tool_calls" json not null default '[]',
      "tool_call_id" text null,
      "task_id" text null,
      "tool_status" text null,
      "truncated" integer not null default false,
      "usage" json null,
      "created_at" datetime not null
    );`);
    this.addSql('create unique index "messages_thread_seq_uniq" on "messages" ("thread_id", "seq");');
    this.addSql('create index "messages_turn_idx" on "messages" ("turn_id");');
  }

  override down(): void {
    this.addSql('drop table if exists "messages";');
    this.addSql('drop table if exists "turns";');
    this.addSql('drop table if exists "threads";');
  }
}
