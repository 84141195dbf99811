SET FOREIGN_KEY_CHECKS=0;

CREATE TABLE `admins` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `username` varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `password` varchar(255) NOT NULL,
  `totp_secret` varchar(64) DEFAULT NULL,
  `totp_pending_secret` varchar(64) DEFAULT NULL,
  `totp_last_step` bigint(20) DEFAULT NULL,
  `totp_recovery_codes` text DEFAULT NULL,
  `last_login_at` datetime DEFAULT NULL,
  `failed_logins` int(11) NOT NULL DEFAULT 0,
  `locked_until` datetime DEFAULT NULL,
  `session_version` int(11) NOT NULL DEFAULT 0,
  `role` varchar(16) NOT NULL DEFAULT 'server',
  `require_2fa` tinyint(1) NOT NULL DEFAULT 0,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_admins_username` (`username`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `admin_domains` (
  `admin_id` bigint(20) NOT NULL,
  `domain_id` bigint(20) NOT NULL,
  PRIMARY KEY (`admin_id`,`domain_id`),
  KEY `ix_admin_domains_domain_id` (`domain_id`),
  CONSTRAINT `fk_admin_domains_admin_id_admins` FOREIGN KEY (`admin_id`) REFERENCES `admins` (`id`) ON DELETE CASCADE,
  CONSTRAINT `fk_admin_domains_domain_id_mail_domains` FOREIGN KEY (`domain_id`) REFERENCES `mail_domains` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `admin_events` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `occurred_at` datetime NOT NULL,
  `actor` varchar(255) NOT NULL,
  `action` varchar(32) NOT NULL,
  `targets` longtext NOT NULL,
  `changes` longtext DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_admin_events_actor` (`actor`),
  KEY `ix_admin_events_action` (`action`),
  KEY `ix_admin_events_occurred_at` (`occurred_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `admin_event_domains` (
  `domain_id` bigint(20) NOT NULL,
  `event_id` bigint(20) NOT NULL,
  PRIMARY KEY (`domain_id`,`event_id`),
  KEY `ix_admin_event_domains_event_id` (`event_id`),
  CONSTRAINT `fk_admin_event_domains_event_id_admin_events` FOREIGN KEY (`event_id`) REFERENCES `admin_events` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_accounts` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `domain_id` bigint(20) NOT NULL,
  `email` varchar(254) NOT NULL,
  `password` varchar(255) NOT NULL,
  `display_name` varchar(255) DEFAULT NULL,
  `quota_mb` int(10) unsigned NOT NULL DEFAULT 0,
  `is_active` tinyint(1) NOT NULL DEFAULT 1,
  `deleted_at` datetime DEFAULT NULL,
  `last_synced_at` datetime DEFAULT NULL,
  `used_bytes` bigint(20) NOT NULL DEFAULT 0,
  `usage_share` double GENERATED ALWAYS AS (case when `quota_mb` > 0 then cast(`used_bytes` as double) / (`quota_mb` * 1048576) end) STORED,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_accounts_email` (`email`),
  KEY `ix_mail_accounts_domain_id_email` (`domain_id`,`email`),
  KEY `ix_mail_accounts_deleted_at_email` (`deleted_at`,`email`),
  KEY `ix_mail_accounts_deleted_at_usage_share` (`deleted_at`,`usage_share`),
  KEY `ix_mail_accounts_is_active` (`is_active`),
  KEY `ix_mail_accounts_deleted_at_used_bytes` (`deleted_at`,`used_bytes`),
  KEY `ix_mail_accounts_quota_mb` (`quota_mb`),
  KEY `ix_mail_accounts_domain_id_used_bytes` (`domain_id`,`used_bytes`),
  KEY `ix_mail_accounts_domain_id_usage_share` (`domain_id`,`usage_share`),
  KEY `ix_mail_accounts_last_synced_at` (`last_synced_at`),
  CONSTRAINT `fk_mail_accounts_domain_id_mail_domains` FOREIGN KEY (`domain_id`) REFERENCES `mail_domains` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_addresses` (
  `address` varchar(254) NOT NULL,
  `domain_id` bigint(20) NOT NULL,
  `kind` varchar(16) NOT NULL,
  PRIMARY KEY (`address`),
  KEY `ix_mail_addresses_domain_id` (`domain_id`),
  CONSTRAINT `fk_mail_addresses_domain_id_mail_domains` FOREIGN KEY (`domain_id`) REFERENCES `mail_domains` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_aliases` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `domain_id` bigint(20) NOT NULL,
  `alias_email` varchar(254) NOT NULL,
  `destination_email` varchar(254) NOT NULL,
  `is_active` tinyint(1) NOT NULL DEFAULT 1,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_aliases_alias_email_destination_email` (`alias_email`,`destination_email`),
  KEY `ix_mail_aliases_alias_email` (`alias_email`),
  KEY `ix_mail_aliases_domain_id` (`domain_id`),
  KEY `ix_mail_aliases_destination_email` (`destination_email`),
  CONSTRAINT `fk_mail_aliases_domain_id_mail_domains` FOREIGN KEY (`domain_id`) REFERENCES `mail_domains` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_autoresponders` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `email` varchar(254) NOT NULL,
  `subject` varchar(255) NOT NULL,
  `body` text NOT NULL,
  `starts_at` datetime DEFAULT NULL,
  `ends_at` datetime DEFAULT NULL,
  `is_active` tinyint(1) NOT NULL DEFAULT 1,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_mail_autoresponders_email` (`email`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_domains` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `domain` varchar(253) NOT NULL,
  `is_active` tinyint(1) NOT NULL DEFAULT 1,
  `unicode_domain` varchar(253) DEFAULT NULL,
  `max_accounts` int(10) unsigned DEFAULT NULL,
  `max_aliases` int(10) unsigned DEFAULT NULL,
  `total_quota_mb` int(10) unsigned DEFAULT NULL,
  `default_quota_mb` int(10) unsigned DEFAULT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_domains_domain` (`domain`),
  KEY `ix_mail_domains_is_active` (`is_active`),
  KEY `ix_mail_domains_unicode_domain` (`unicode_domain`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_forwards` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `account_id` bigint(20) NOT NULL,
  `destination_email` varchar(254) NOT NULL,
  `created_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_forwards_account_id_destination_email` (`account_id`,`destination_email`),
  CONSTRAINT `fk_mail_forwards_account_id_mail_accounts` FOREIGN KEY (`account_id`) REFERENCES `mail_accounts` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_groups` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `name` varchar(255) NOT NULL,
  `description` text DEFAULT NULL,
  `email` varchar(254) DEFAULT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_groups_name` (`name`),
  UNIQUE KEY `ix_mail_groups_email` (`email`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_group_members` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `group_id` bigint(20) NOT NULL,
  `account_id` bigint(20) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_group_members_group_id_account_id` (`group_id`,`account_id`),
  KEY `ix_mail_group_members_account_id` (`account_id`),
  CONSTRAINT `fk_mail_group_members_account_id_mail_accounts` FOREIGN KEY (`account_id`) REFERENCES `mail_accounts` (`id`) ON DELETE CASCADE,
  CONSTRAINT `fk_mail_group_members_group_id_mail_groups` FOREIGN KEY (`group_id`) REFERENCES `mail_groups` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_quota_usage` (
  `email` varchar(254) NOT NULL,
  `bytes` bigint(20) NOT NULL DEFAULT 0,
  `messages` bigint(20) NOT NULL DEFAULT 0,
  `updated_at` datetime DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  PRIMARY KEY (`email`),
  KEY `ix_mail_quota_usage_bytes` (`bytes`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `mail_sieve_scripts` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `email` varchar(254) NOT NULL,
  `name` varchar(64) NOT NULL,
  `script` longtext NOT NULL,
  `created_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_mail_sieve_scripts_email_name` (`email`,`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `opmail_alembic_version` (
  `version_num` varchar(32) NOT NULL,
  PRIMARY KEY (`version_num`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `sync_events` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `action` varchar(16) NOT NULL,
  `email` varchar(254) NOT NULL,
  `outcome` varchar(16) NOT NULL,
  `received_at` datetime NOT NULL,
  `remote_addr` varchar(45) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_sync_events_received_at` (`received_at`),
  KEY `ix_sync_events_email` (`email`),
  KEY `ix_sync_events_outcome` (`outcome`),
  KEY `ix_sync_events_action` (`action`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `user_two_factor` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `email` varchar(254) NOT NULL,
  `secret` varchar(255) NOT NULL,
  `recovery_codes` text DEFAULT NULL,
  `enabled_at` datetime DEFAULT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_user_two_factor_email` (`email`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TRIGGER mail_accounts_usage_on_insert BEFORE INSERT ON mail_accounts FOR EACH ROW SET NEW.used_bytes = COALESCE((SELECT bytes FROM mail_quota_usage WHERE email = NEW.email), 0);

CREATE TRIGGER mail_quota_usage_copy_insert AFTER INSERT ON mail_quota_usage FOR EACH ROW UPDATE mail_accounts SET used_bytes = NEW.bytes WHERE email = NEW.email;

CREATE TRIGGER mail_quota_usage_copy_update AFTER UPDATE ON mail_quota_usage FOR EACH ROW UPDATE mail_accounts SET used_bytes = NEW.bytes WHERE email = NEW.email;

CREATE TRIGGER mail_quota_usage_copy_delete AFTER DELETE ON mail_quota_usage FOR EACH ROW UPDATE mail_accounts SET used_bytes = 0 WHERE email = OLD.email;

SET FOREIGN_KEY_CHECKS=1;

INSERT INTO opmail_alembic_version (version_num) VALUES ('b7d15e0c3f62');
