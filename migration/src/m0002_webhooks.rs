//! Webhooks of verify sessions, their delivery outbox and the record of every attempt.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(pk_uuid(Webhooks::Id))
                    .col(uuid(Webhooks::SessionId))
                    .col(uuid(Webhooks::ProjectId))
                    .col(integer(Webhooks::Position))
                    .col(text(Webhooks::Url))
                    .col(string(Webhooks::Method))
                    .col(text(Webhooks::Headers))
                    .col(string(Webhooks::Events))
                    .col(integer(Webhooks::Retries))
                    .col(integer(Webhooks::InitialBackoff))
                    .col(double(Webhooks::BackoffMultiplier))
                    .col(string(Webhooks::Secret))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .col(timestamp_with_time_zone(Webhooks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Webhooks::Table, Webhooks::SessionId)
                            .to(VerifySessions::Table, VerifySessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhooks_session")
                    .table(Webhooks::Table)
                    .col(Webhooks::SessionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(pk_uuid(WebhookDeliveries::Id))
                    .col(uuid(WebhookDeliveries::WebhookId))
                    .col(uuid(WebhookDeliveries::SessionId))
                    .col(uuid(WebhookDeliveries::EventId))
                    .col(string(WebhookDeliveries::Event))
                    .col(timestamp_with_time_zone(WebhookDeliveries::TriggerTime))
                    .col(text(WebhookDeliveries::Payload))
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(integer(WebhookDeliveries::RoundAttempts))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::LockedUntil,
                    ))
                    .col(uuid_null(WebhookDeliveries::LeaseToken))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::CompletedAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker looks for pending deliveries by due time.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_status_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // A claim reads back the rows it leased by token.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_lease")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::LeaseToken)
                    .to_owned(),
            )
            .await?;
        // `Webhook.deliveries` lists a webhook's deliveries newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_webhook")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::WebhookId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(pk_uuid(WebhookAttempts::Id))
                    .col(uuid(WebhookAttempts::DeliveryId))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(string(WebhookAttempts::Outcome))
                    .col(integer_null(WebhookAttempts::ResponseStatus))
                    .col(text_null(WebhookAttempts::ResponseBody))
                    .col(text_null(WebhookAttempts::Error))
                    .col(big_integer(WebhookAttempts::DurationMs))
                    .col(timestamp_with_time_zone(WebhookAttempts::StartedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                            .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::Attempt)
                    .to_owned(),
            )
            .await?;

        Ok(())
    }
}

#[derive(DeriveIden)]
enum VerifySessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    SessionId,
    ProjectId,
    Position,
    Url,
    Method,
    Headers,
    Events,
    Retries,
    InitialBackoff,
    BackoffMultiplier,
    Secret,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    SessionId,
    EventId,
    Event,
    TriggerTime,
    Payload,
    Status,
    Attempts,
    RoundAttempts,
    NextAttemptAt,
    LockedUntil,
    LeaseToken,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Attempt,
    Outcome,
    ResponseStatus,
    ResponseBody,
    Error,
    DurationMs,
    StartedAt,
}
