//! What other systems hear about a reservation (events, sent to webhook endpoints), and
//! what the payment provider tells innkeeper about one (payments).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InvalidField;

/// The kinds of event a webhook endpoint may subscribe to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    #[serde(rename = "reservation.created")]
    ReservationCreated,
    #[serde(rename = "reservation.confirmed")]
    ReservationConfirmed,
    #[serde(rename = "reservation.canceled")]
    ReservationCanceled,
    #[serde(rename = "reservation.expired")]
    ReservationExpired,
    /// A payment must go back: it arrived after the hold ended or the stay was canceled,
    /// or a paid stay was canceled.
    #[serde(rename = "refund.requested")]
    RefundRequested,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::ReservationCreated,
        EventType::ReservationConfirmed,
        EventType::ReservationCanceled,
        EventType::ReservationExpired,
        EventType::RefundRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservationCreated => "reservation.created",
            Self::ReservationConfirmed => "reservation.confirmed",
            Self::ReservationCanceled => "reservation.canceled",
            Self::ReservationExpired => "reservation.expired",
            Self::RefundRequested => "refund.requested",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = InvalidField;

    fn from_str(value: &str) -> Result<Self, InvalidField> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| {
                InvalidField::new(
                    "event_types",
                    format!(
                        "must be among {}",
                        Self::ALL.map(EventType::as_str).join(", ")
                    ),
                )
            })
    }
}

/// Where a webhook endpoint receives its events: an absolute `http` or `https` URL with a
/// host and without credentials (a URL's user and password would be stored and shown to
/// every member of staff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Longest URL accepted.
    const MAX_CHARS: usize = 2000;

    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        let invalid = |message: &str| InvalidField::new("url", message);
        if value.chars().count() > Self::MAX_CHARS {
            return Err(invalid("must be at most 2000 characters"));
        }
        let url = url::Url::parse(value).map_err(|_| invalid("must be an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        Ok(Self(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a reservation's payment stands, as the payment provider reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Nothing heard from the payment provider yet.
    Unpaid,
    /// A payment failed; the hold stays until it expires, so the guest can pay again.
    Failed,
    /// Paid in full.
    Paid,
    /// A payment of the wrong amount or currency: the reservation stays pending, for staff.
    Mismatched,
    /// The money must go back (event `refund.requested`).
    RefundRequested,
    /// The provider reported the refund.
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Failed => "failed",
            Self::Paid => "paid",
            Self::Mismatched => "mismatched",
            Self::RefundRequested => "refund_requested",
            Self::Refunded => "refunded",
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        [
            Self::Unpaid,
            Self::Failed,
            Self::Paid,
            Self::Mismatched,
            Self::RefundRequested,
            Self::Refunded,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
        .ok_or_else(|| format!("`{value}` is not a payment status"))
    }
}

/// A reservation's payment, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub status: PaymentStatus,
    /// The provider's id of the payment recorded, if any.
    pub payment_id: Option<String>,
    /// What that payment was for, in the reservation's currency.
    pub amount_cents: i64,
    pub refunded_cents: i64,
}

impl Payment {
    /// A reservation's payment before the provider says anything.
    pub fn unpaid() -> Self {
        Self {
            status: PaymentStatus::Unpaid,
            payment_id: None,
            amount_cents: 0,
            refunded_cents: 0,
        }
    }
}

/// The payment provider's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum PaymentEventType {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
}

impl PaymentEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentSucceeded => "payment.succeeded",
            Self::PaymentFailed => "payment.failed",
            Self::RefundSucceeded => "refund.succeeded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_back_what_they_print() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert!("reservation.paid".parse::<EventType>().is_err());
    }

    #[test]
    fn webhook_urls_are_http_with_a_host_and_no_credentials() {
        for good in [
            "https://pms.example.com/hooks/innkeeper",
            "http://127.0.0.1:8081/events?hotel=1",
        ] {
            assert_eq!(WebhookUrl::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "pms.example.com/hooks",
            "ftp://example.com/x",
            "file:///etc/passwd",
            "https://user:secret@example.com/hooks",
            "https://user@example.com/hooks",
            "https://example.com/hooks#part",
            "javascript:alert(1)",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(WebhookUrl::parse(&format!("https://example.com/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn payment_statuses_read_back_what_they_print() {
        for status in [
            PaymentStatus::Unpaid,
            PaymentStatus::Failed,
            PaymentStatus::Paid,
            PaymentStatus::Mismatched,
            PaymentStatus::RefundRequested,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(status.as_str().parse::<PaymentStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }
}
