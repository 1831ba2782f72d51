//! Projects, API keys, verify sessions with their keys and connections, and session events.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(pk_uuid(Projects::Id))
                    .col(string_uniq(Projects::Name))
                    .col(timestamp_with_time_zone(Projects::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(pk_uuid(ApiKeys::Id))
                    .col(uuid(ApiKeys::ProjectId))
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::KeyPrefix))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VerifySessions::Table)
                    .col(pk_uuid(VerifySessions::Id))
                    .col(uuid(VerifySessions::ProjectId))
                    .col(string_uniq(VerifySessions::ConnectionIdentifier))
                    .col(string(VerifySessions::Status))
                    .col(string_null(VerifySessions::FailureReason))
                    .col(string_null(VerifySessions::ExternalId))
                    .col(boolean(VerifySessions::MatchAllKeys))
                    .col(integer(VerifySessions::MaxAttempts))
                    .col(integer(VerifySessions::FailedAttempts))
                    .col(boolean(VerifySessions::MultiConnection))
                    .col(boolean(VerifySessions::MultiKey))
                    .col(boolean(VerifySessions::MustConfirm))
                    .col(text_null(VerifySessions::SshBanner))
                    .col(text_null(VerifySessions::SshMessage))
                    .col(string_uniq(VerifySessions::ClientTokenHash))
                    .col(big_integer(VerifySessions::EventSeq))
                    .col(timestamp_with_time_zone(VerifySessions::CreatedAt))
                    .col(timestamp_with_time_zone(VerifySessions::UpdatedAt))
                    .col(timestamp_with_time_zone(VerifySessions::ExpiredAt))
                    .col(timestamp_with_time_zone_null(VerifySessions::CompletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(VerifySessions::Table, VerifySessions::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Listing is per project, newest first, optionally by status or external id.
        manager
            .create_index(
                Index::create()
                    .name("idx_verify_sessions_project_created")
                    .table(VerifySessions::Table)
                    .col(VerifySessions::ProjectId)
                    .col(VerifySessions::CreatedAt)
                    .col(VerifySessions::Id)
                    .to_owned(),
            )
            .await?;

        // The expiry sweep looks for pending sessions by expiry time.
        manager
            .create_index(
                Index::create()
                    .name("idx_verify_sessions_status_expired")
                    .table(VerifySessions::Table)
                    .col(VerifySessions::Status)
                    .col(VerifySessions::ExpiredAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VerifyKeys::Table)
                    .col(pk_uuid(VerifyKeys::Id))
                    .col(uuid(VerifyKeys::SessionId))
                    .col(integer(VerifyKeys::Position))
                    .col(string_null(VerifyKeys::Name))
                    .col(string_null(VerifyKeys::ExternalId))
                    .col(string(VerifyKeys::PublicKeyAlgorithm))
                    .col(text(VerifyKeys::PublicKeySsh))
                    .col(text(VerifyKeys::PublicKeyPem))
                    .col(string(VerifyKeys::PublicKeyMd5))
                    .col(string(VerifyKeys::PublicKeySha256))
                    .col(timestamp_with_time_zone_null(VerifyKeys::VerifiedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(VerifyKeys::Table, VerifyKeys::SessionId)
                            .to(VerifySessions::Table, VerifySessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_verify_keys_session",
            VerifyKeys::Table,
            VerifyKeys::SessionId,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(VerifyConnections::Table)
                    .col(pk_uuid(VerifyConnections::Id))
                    .col(uuid(VerifyConnections::SessionId))
                    .col(string(VerifyConnections::IpAddress))
                    .col(string(VerifyConnections::ClientVersion))
                    .col(timestamp_with_time_zone(VerifyConnections::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(VerifyConnections::Table, VerifyConnections::SessionId)
                            .to(VerifySessions::Table, VerifySessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_verify_connections_session",
            VerifyConnections::Table,
            VerifyConnections::SessionId,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConnectionKeys::Table)
                    .col(pk_uuid(ConnectionKeys::Id))
                    .col(uuid(ConnectionKeys::ConnectionId))
                    .col(uuid(ConnectionKeys::SessionId))
                    .col(uuid_null(ConnectionKeys::MatchedKeyId))
                    .col(string(ConnectionKeys::PublicKeyAlgorithm))
                    .col(text(ConnectionKeys::PublicKeySsh))
                    .col(text(ConnectionKeys::PublicKeyPem))
                    .col(string(ConnectionKeys::PublicKeyMd5))
                    .col(string(ConnectionKeys::PublicKeySha256))
                    .col(timestamp_with_time_zone(ConnectionKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ConnectionKeys::VerifiedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConnectionKeys::Table, ConnectionKeys::ConnectionId)
                            .to(VerifyConnections::Table, VerifyConnections::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_connection_keys_session",
            ConnectionKeys::Table,
            ConnectionKeys::SessionId,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(SessionEvents::Table)
                    .col(pk_uuid(SessionEvents::Id))
                    .col(uuid(SessionEvents::SessionId))
                    .col(big_integer(SessionEvents::Seq))
                    .col(string(SessionEvents::Kind))
                    .col(uuid_null(SessionEvents::ConnectionId))
                    .col(uuid_null(SessionEvents::KeyId))
                    .col(uuid_null(SessionEvents::ConnectionKeyId))
                    .col(timestamp_with_time_zone(SessionEvents::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionEvents::Table, SessionEvents::SessionId)
                            .to(VerifySessions::Table, VerifySessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_events_session_seq")
                    .table(SessionEvents::Table)
                    .col(SessionEvents::SessionId)
                    .col(SessionEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        Ok(())
    }
}

async fn index<T: Iden + 'static, C: Iden + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    column: C,
) -> Result<(), DbErr> {
    manager
        .create_index(
            Index::create()
                .name(name)
                .table(table)
                .col(column)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    ProjectId,
    Name,
    KeyPrefix,
    KeyHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum VerifySessions {
    Table,
    Id,
    ProjectId,
    ConnectionIdentifier,
    Status,
    FailureReason,
    ExternalId,
    MatchAllKeys,
    MaxAttempts,
    FailedAttempts,
    MultiConnection,
    MultiKey,
    MustConfirm,
    SshBanner,
    SshMessage,
    ClientTokenHash,
    EventSeq,
    CreatedAt,
    UpdatedAt,
    ExpiredAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum VerifyKeys {
    Table,
    Id,
    SessionId,
    Position,
    Name,
    ExternalId,
    PublicKeyAlgorithm,
    PublicKeySsh,
    PublicKeyPem,
    PublicKeyMd5,
    PublicKeySha256,
    VerifiedAt,
}

#[derive(DeriveIden)]
enum VerifyConnections {
    Table,
    Id,
    SessionId,
    IpAddress,
    ClientVersion,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConnectionKeys {
    Table,
    Id,
    ConnectionId,
    SessionId,
    MatchedKeyId,
    PublicKeyAlgorithm,
    PublicKeySsh,
    PublicKeyPem,
    PublicKeyMd5,
    PublicKeySha256,
    CreatedAt,
    VerifiedAt,
}

#[derive(DeriveIden)]
enum SessionEvents {
    Table,
    Id,
    SessionId,
    Seq,
    Kind,
    ConnectionId,
    KeyId,
    ConnectionKeyId,
    OccurredAt,
}
