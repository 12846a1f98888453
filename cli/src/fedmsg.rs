//! fedora-messaging messages as values (routing key, id, headers, JSON body), and their one
//! way onto the bus: `amq.topic`, persistent, with a publisher confirm.

use crate::error::Result;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::Bus;
use osbs_common::bus::Outgoing;
use osbs_proto::names;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A message in fedora-messaging's wire format (DESIGN.md "Events in").
#[derive(Debug, Clone, PartialEq)]
pub struct FedoraMessage {
    /// `<topic_prefix>.<topic>`.
    pub routing_key: String,
    /// The AMQP `message_id` (uuid4).
    pub message_id: String,
    /// Strings, integers and booleans only, as fedora-messaging sends them.
    pub headers: BTreeMap<String, Value>,
    pub body: Value,
}

impl FedoraMessage {
    /// A message with the headers every fedora-messaging message has: schema, `sent-at`,
    /// severity INFO (20) and priority 0.
    pub fn new(
        routing_key: String,
        schema: &str,
        message_id: String,
        sent_at_ms: i64,
        body: Value,
    ) -> FedoraMessage {
        let mut headers = BTreeMap::new();
        headers.insert("fedora_messaging_schema".into(), json!(schema));
        headers.insert(
            "sent-at".into(),
            json!(osbs_proto::external::iso8601(sent_at_ms)),
        );
        headers.insert("fedora_messaging_severity".into(), json!(20));
        headers.insert("priority".into(), json!(0));
        FedoraMessage {
            routing_key,
            message_id,
            headers,
            body,
        }
    }

    /// Adds a `fedora_messaging_<kind>_<name>: true` filter header.
    pub fn with_filter(mut self, kind: &str, name: &str) -> FedoraMessage {
        if !name.is_empty() {
            self.headers
                .insert(format!("fedora_messaging_{kind}_{name}"), json!(true));
        }
        self
    }

    /// The message as the fixtures in `shared/fixtures/events/` write one.
    pub fn to_json(&self) -> Value {
        json!({
            "exchange": names::EXCHANGE_TOPIC,
            "routing_key": self.routing_key,
            "properties": {
                "content_type": names::CONTENT_TYPE_JSON,
                "content_encoding": "utf-8",
                "delivery_mode": 2,
                "message_id": self.message_id,
            },
            "headers": self.headers,
            "body": self.body,
        })
    }

    /// AMQP properties: JSON, utf-8, persistent, the message id and the headers.
    pub fn properties(&self) -> BasicProperties {
        let mut table = FieldTable::default();
        for (name, value) in &self.headers {
            let value = match value {
                Value::Bool(flag) => AMQPValue::Boolean(*flag),
                Value::Number(number) if number.is_i64() => {
                    AMQPValue::LongLongInt(number.as_i64().unwrap_or_default())
                }
                Value::String(text) => {
                    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
                }
                other => AMQPValue::LongString(LongString::from(other.to_string().into_bytes())),
            };
            table.insert(name.as_str().into(), value);
        }
        BasicProperties::default()
            .with_content_type(names::CONTENT_TYPE_JSON.into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2)
            .with_message_id(self.message_id.as_str().into())
            .with_headers(table)
    }

    /// Publishes on `amq.topic` and waits for the broker's confirm. `mandatory`: a message
    /// no queue takes is an error (the dispatcher's `osbs.events` must be bound).
    pub async fn publish(&self, bus: &Bus) -> Result<()> {
        let body = serde_json::to_vec(&self.body).expect("a JSON value always serializes");
        bus.publish(Outgoing {
            exchange: names::EXCHANGE_TOPIC,
            routing_key: &self.routing_key,
            body: &body,
            properties: self.properties(),
            mandatory: true,
        })
        .await?;
        Ok(())
    }
}

/// A new fedora-messaging message id (uuid4, as fedora-messaging makes them).
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_their_types() {
        let message = FedoraMessage::new(
            "org.example.git.receive".into(),
            "schema.v1",
            "id-1".into(),
            1_736_936_523_000,
            json!({"a": 1}),
        )
        .with_filter("user", "jdoe")
        .with_filter("container", "");
        let properties = message.properties();
        let headers = properties.headers().clone().unwrap();
        let headers = headers.inner();
        assert_eq!(
            headers.get("fedora_messaging_severity"),
            Some(&AMQPValue::LongLongInt(20))
        );
        assert_eq!(
            headers.get("fedora_messaging_user_jdoe"),
            Some(&AMQPValue::Boolean(true))
        );
        assert!(!headers.contains_key("fedora_messaging_container_"));
        assert_eq!(
            message.to_json()["headers"]["sent-at"],
            "2025-01-15T10:22:03.000+00:00"
        );
        assert_eq!(properties.delivery_mode(), &Some(2));
    }
}
