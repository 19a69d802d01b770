// PostgreSQL: the operators' audit log, and the indexes of the admin task search (every owner) and
// of the queues' finish rates. Checked-in migrations are append-only.
import { Migration } from '@mikro-orm/migrations';

export class Admin extends Migration {
  override up(): void {
    this.addSql(`create table "audit_log" (
      "id" serial not null,
      "at" timestamptz not null,
      "actor" varchar(255) not null,
      "action" varchar(64) not null,
      "target" varchar(255) not null,
      "detail" jsonb null,
      primary key ("id")
    );`);
    this.addSql('create index "audit_log_actor_idx" on "audit_log" ("actor", "id" DESC);');
    this.addSql('create index "audit_log_action_idx" on "audit_log" ("action", "id" DESC);');
    this.addSql('create index "tasks_submitted_idx" on "tasks" ("submitted_at" DESC, "id" DESC);');
    this.addSql('create index "tasks_queue_finished_idx" on "tasks" ("queue", "finished_at");');
  }

  override down(): void {
    this.addSql('drop index if exists "tasks_queue_finished_idx";');
    this.addSql('drop index if exists "tasks_submitted_idx";');
    this.addSql('drop table if exists "audit_log";');
  }
}
