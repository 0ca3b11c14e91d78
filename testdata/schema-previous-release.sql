-- The SQLite schema of the previous release (before nodes and migrations),
-- as its AutoMigrate created it. Used by TestUpgradePreviousRelease.
CREATE TABLE `artifacts` (`id` text,`parent_id` text,`data` blob NOT NULL,`level` integer NOT NULL,`created_at` datetime,`updated_at` datetime,PRIMARY KEY (`id`),CONSTRAINT `fk_artifacts_parent` FOREIGN KEY (`parent_id`) REFERENCES `artifacts`(`id`) ON DELETE SET NULL);
CREATE TABLE `jobs` (`id` text,`kind` text NOT NULL,`args` json,`status` text NOT NULL,`submitted_at` datetime NOT NULL,`started_at` datetime,`finished_at` datetime,`error` text,`error_traceback` text,`artifact_id` text,`pgid` integer,`attempt` integer NOT NULL DEFAULT 1,PRIMARY KEY (`id`));
CREATE TABLE `tasks` (`id` text,`command` text NOT NULL,`task_type` text NOT NULL,`parameters` json,`enabled` numeric NOT NULL,`timeout_seconds` integer,`created_at` datetime NOT NULL,`updated_at` datetime NOT NULL,PRIMARY KEY (`id`));
CREATE INDEX `idx_artifacts_level` ON `artifacts`(`level`);
CREATE INDEX `idx_artifacts_parent_id` ON `artifacts`(`parent_id`);
CREATE INDEX `idx_jobs_status_submitted` ON `jobs`(`status`,`submitted_at`);
CREATE INDEX `idx_jobs_submitted_at` ON `jobs`(`submitted_at`);
