CREATE TABLE mail_domains (
	id INTEGER NOT NULL, 
	domain VARCHAR(253) NOT NULL, 
	is_active BOOLEAN DEFAULT 1 NOT NULL, 
	unicode_domain VARCHAR(253), 
	max_accounts INTEGER, 
	max_aliases INTEGER, 
	total_quota_mb INTEGER, 
	default_quota_mb INTEGER, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_mail_domains PRIMARY KEY (id), 
	CONSTRAINT uq_mail_domains_domain UNIQUE (domain)
);

CREATE INDEX ix_mail_domains_unicode_domain ON mail_domains (unicode_domain);

CREATE INDEX ix_mail_domains_is_active ON mail_domains (is_active);

CREATE TABLE mail_autoresponders (
	id INTEGER NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	subject VARCHAR(255) NOT NULL, 
	body TEXT NOT NULL, 
	starts_at DATETIME, 
	ends_at DATETIME, 
	is_active BOOLEAN DEFAULT 1 NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_mail_autoresponders PRIMARY KEY (id)
);

CREATE INDEX ix_mail_autoresponders_email ON mail_autoresponders (email);

CREATE TABLE mail_groups (
	id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description TEXT, 
	email VARCHAR(254), 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_mail_groups PRIMARY KEY (id), 
	CONSTRAINT uq_mail_groups_name UNIQUE (name)
);

CREATE UNIQUE INDEX ix_mail_groups_email ON mail_groups (email);

CREATE TABLE mail_sieve_scripts (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	email VARCHAR(254) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	script TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT uq_mail_sieve_scripts_email_name UNIQUE (email, name)
);

CREATE TABLE user_two_factor (
	id INTEGER NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	secret VARCHAR(255) NOT NULL, 
	recovery_codes TEXT, 
	enabled_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_user_two_factor PRIMARY KEY (id), 
	CONSTRAINT uq_user_two_factor_email UNIQUE (email)
);

CREATE TABLE mail_quota_usage (
	email VARCHAR(254) NOT NULL, 
	bytes BIGINT DEFAULT '0' NOT NULL, 
	messages BIGINT DEFAULT '0' NOT NULL, 
	updated_at DATETIME DEFAULT CURRENT_TIMESTAMP, 
	CONSTRAINT pk_mail_quota_usage PRIMARY KEY (email)
);

CREATE INDEX ix_mail_quota_usage_bytes ON mail_quota_usage (bytes);

CREATE TRIGGER mail_quota_usage_stamp AFTER UPDATE OF bytes, messages ON mail_quota_usage WHEN NEW.updated_at IS OLD.updated_at BEGIN UPDATE mail_quota_usage SET updated_at = CURRENT_TIMESTAMP WHERE email = NEW.email; END;

CREATE TABLE admins (
	id INTEGER NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	password VARCHAR(255) NOT NULL, 
	totp_secret VARCHAR(64), 
	totp_pending_secret VARCHAR(64), 
	totp_last_step BIGINT, 
	totp_recovery_codes TEXT, 
	last_login_at DATETIME, 
	failed_logins INTEGER DEFAULT '0' NOT NULL, 
	locked_until DATETIME, 
	session_version INTEGER DEFAULT '0' NOT NULL, 
	role VARCHAR(16) DEFAULT 'server' NOT NULL, 
	require_2fa BOOLEAN DEFAULT 0 NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_admins PRIMARY KEY (id), 
	CONSTRAINT uq_admins_username UNIQUE (username)
);

CREATE TABLE sync_events (
	id INTEGER NOT NULL, 
	action VARCHAR(16) NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	received_at DATETIME NOT NULL, 
	remote_addr VARCHAR(45), 
	CONSTRAINT pk_sync_events PRIMARY KEY (id)
);

CREATE INDEX ix_sync_events_received_at ON sync_events (received_at);

CREATE INDEX ix_sync_events_email ON sync_events (email);

CREATE INDEX ix_sync_events_outcome ON sync_events (outcome);

CREATE INDEX ix_sync_events_action ON sync_events (action);

CREATE TABLE admin_events (
	id INTEGER NOT NULL, 
	occurred_at DATETIME NOT NULL, 
	actor VARCHAR(255) NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	targets TEXT NOT NULL, 
	changes TEXT, 
	CONSTRAINT pk_admin_events PRIMARY KEY (id)
);

CREATE INDEX ix_admin_events_actor ON admin_events (actor);

CREATE INDEX ix_admin_events_action ON admin_events (action);

CREATE INDEX ix_admin_events_occurred_at ON admin_events (occurred_at);

CREATE TABLE mail_accounts (
	id INTEGER NOT NULL, 
	domain_id INTEGER NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	password VARCHAR(255) NOT NULL, 
	display_name VARCHAR(255), 
	quota_mb INTEGER DEFAULT '0' NOT NULL, 
	is_active BOOLEAN DEFAULT 1 NOT NULL, 
	deleted_at DATETIME, 
	last_synced_at DATETIME, 
	used_bytes BIGINT DEFAULT '0' NOT NULL, 
	usage_share DOUBLE GENERATED ALWAYS AS (CASE WHEN quota_mb > 0 THEN CAST(used_bytes AS DOUBLE) / (quota_mb * 1048576) END) STORED, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_mail_accounts PRIMARY KEY (id), 
	CONSTRAINT fk_mail_accounts_domain_id_mail_domains FOREIGN KEY(domain_id) REFERENCES mail_domains (id), 
	CONSTRAINT uq_mail_accounts_email UNIQUE (email)
);

CREATE INDEX ix_mail_accounts_is_active ON mail_accounts (is_active);

CREATE INDEX ix_mail_accounts_quota_mb ON mail_accounts (quota_mb);

CREATE INDEX ix_mail_accounts_domain_id_used_bytes ON mail_accounts (domain_id, used_bytes);

CREATE INDEX ix_mail_accounts_deleted_at_used_bytes ON mail_accounts (deleted_at, used_bytes);

CREATE INDEX ix_mail_accounts_deleted_at_email ON mail_accounts (deleted_at, email);

CREATE INDEX ix_mail_accounts_domain_id_email ON mail_accounts (domain_id, email);

CREATE INDEX ix_mail_accounts_deleted_at_usage_share ON mail_accounts (deleted_at, usage_share);

CREATE INDEX ix_mail_accounts_last_synced_at ON mail_accounts (last_synced_at);

CREATE INDEX ix_mail_accounts_domain_id_usage_share ON mail_accounts (domain_id, usage_share);

CREATE TABLE mail_aliases (
	id INTEGER NOT NULL, 
	domain_id INTEGER NOT NULL, 
	alias_email VARCHAR(254) NOT NULL, 
	destination_email VARCHAR(254) NOT NULL, 
	is_active BOOLEAN DEFAULT 1 NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_mail_aliases PRIMARY KEY (id), 
	CONSTRAINT uq_mail_aliases_alias_email_destination_email UNIQUE (alias_email, destination_email), 
	CONSTRAINT fk_mail_aliases_domain_id_mail_domains FOREIGN KEY(domain_id) REFERENCES mail_domains (id)
);

CREATE INDEX ix_mail_aliases_domain_id ON mail_aliases (domain_id);

CREATE INDEX ix_mail_aliases_destination_email ON mail_aliases (destination_email);

CREATE INDEX ix_mail_aliases_alias_email ON mail_aliases (alias_email);

CREATE TABLE mail_addresses (
	address VARCHAR(254) NOT NULL, 
	domain_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	CONSTRAINT pk_mail_addresses PRIMARY KEY (address), 
	CONSTRAINT fk_mail_addresses_domain_id_mail_domains FOREIGN KEY(domain_id) REFERENCES mail_domains (id)
);

CREATE INDEX ix_mail_addresses_domain_id ON mail_addresses (domain_id);

CREATE TABLE admin_domains (
	admin_id INTEGER NOT NULL, 
	domain_id INTEGER NOT NULL, 
	CONSTRAINT pk_admin_domains PRIMARY KEY (admin_id, domain_id), 
	CONSTRAINT fk_admin_domains_admin_id_admins FOREIGN KEY(admin_id) REFERENCES admins (id) ON DELETE CASCADE, 
	CONSTRAINT fk_admin_domains_domain_id_mail_domains FOREIGN KEY(domain_id) REFERENCES mail_domains (id) ON DELETE CASCADE
);

CREATE INDEX ix_admin_domains_domain_id ON admin_domains (domain_id);

CREATE TABLE admin_event_domains (
	domain_id INTEGER NOT NULL, 
	event_id INTEGER NOT NULL, 
	CONSTRAINT pk_admin_event_domains PRIMARY KEY (domain_id, event_id), 
	CONSTRAINT fk_admin_event_domains_event_id_admin_events FOREIGN KEY(event_id) REFERENCES admin_events (id) ON DELETE CASCADE
);

CREATE INDEX ix_admin_event_domains_event_id ON admin_event_domains (event_id);

CREATE TABLE mail_group_members (
	id INTEGER NOT NULL, 
	group_id INTEGER NOT NULL, 
	account_id INTEGER NOT NULL, 
	CONSTRAINT pk_mail_group_members PRIMARY KEY (id), 
	CONSTRAINT uq_mail_group_members_group_id_account_id UNIQUE (group_id, account_id), 
	CONSTRAINT fk_mail_group_members_group_id_mail_groups FOREIGN KEY(group_id) REFERENCES mail_groups (id) ON DELETE CASCADE, 
	CONSTRAINT fk_mail_group_members_account_id_mail_accounts FOREIGN KEY(account_id) REFERENCES mail_accounts (id) ON DELETE CASCADE
);

CREATE INDEX ix_mail_group_members_account_id ON mail_group_members (account_id);

CREATE TABLE mail_forwards (
	id INTEGER NOT NULL, 
	account_id INTEGER NOT NULL, 
	destination_email VARCHAR(254) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_mail_forwards PRIMARY KEY (id), 
	CONSTRAINT uq_mail_forwards_account_id_destination_email UNIQUE (account_id, destination_email), 
	CONSTRAINT fk_mail_forwards_account_id_mail_accounts FOREIGN KEY(account_id) REFERENCES mail_accounts (id) ON DELETE CASCADE
);

CREATE TRIGGER mail_quota_usage_copy_insert AFTER INSERT ON mail_quota_usage BEGIN UPDATE mail_accounts SET used_bytes = NEW.bytes WHERE email = NEW.email; END;

CREATE TRIGGER mail_quota_usage_copy_update AFTER UPDATE OF bytes ON mail_quota_usage BEGIN UPDATE mail_accounts SET used_bytes = NEW.bytes WHERE email = NEW.email; END;

CREATE TRIGGER mail_quota_usage_copy_delete AFTER DELETE ON mail_quota_usage BEGIN UPDATE mail_accounts SET used_bytes = 0 WHERE email = OLD.email; END;

CREATE TRIGGER mail_accounts_usage_on_insert AFTER INSERT ON mail_accounts BEGIN UPDATE mail_accounts SET used_bytes = COALESCE((SELECT bytes FROM mail_quota_usage WHERE email = NEW.email), 0) WHERE id = NEW.id; END;

CREATE TABLE opmail_alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT opmail_alembic_version_pkc PRIMARY KEY (version_num)
);

INSERT INTO opmail_alembic_version (version_num) VALUES ('b7d15e0c3f62');
