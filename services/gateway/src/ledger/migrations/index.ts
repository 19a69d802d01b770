// The ledger's checked-in migrations, one ordered list per dialect. MikroORM's Migrator runs them
// at boot and records each name in `mikro_orm_migrations`. Names are permanent: renaming one makes
// it run again. Both lists must describe the same schema as the entities (../task-entity.ts, ../audit-entity.ts,
// ../thread-entities.ts).
import type { MigrationObject } from '@mikro-orm/core';
import { CreateTasks as PgCreateTasks } from './postgresql/0001-create-tasks.ts';
import { Admin as PgAdmin } from './postgresql/0002-admin.ts';
import { Agent as PgAgent } from './postgresql/0003-agent.ts';
import { CreateTasks as SqliteCreateTasks } from './sqlite/0001-create-tasks.ts';
import { Admin as SqliteAdmin } from './sqlite/0002-admin.ts';
import { Agent as SqliteAgent } from './sqlite/0003-agent.ts';

export const SQLITE_MIGRATIONS: MigrationObject[] = [
  { name: '0001-create-tasks', class: SqliteCreateTasks },
  { name: '0002-admin', class: SqliteAdmin },
  { name: '0003-agent', class: SqliteAgent },
];

export const POSTGRESQL_MIGRATIONS: MigrationObject[] = [
  { name: '0001-create-tasks', class: PgCreateTasks },
  { name: '0002-admin', class: PgAdmin },
  { name: '0003-agent', class: PgAgent },
];
