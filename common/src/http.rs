//! `/healthz` and Prometheus `/metrics` for every service, with the metric families they
//! share (builds by state, step durations, queue lag, retries, dead-letters).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// The metric families of a service. Cheap to clone; every clone updates the same values.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Transitions into each state made by this service.
    pub builds: Family<StateLabel, Counter>,
    /// Seconds spent in each pipeline step.
    pub step_seconds: Family<StepLabel, Histogram>,
    /// Seconds between an event being sent and this service taking it.
    pub queue_lag_seconds: Family<QueueLabel, Histogram>,
    pub retries: Family<ReasonLabel, Counter>,
    pub dead_letters: Family<QueueLabel, Counter>,
    /// Events accepted but not built (not configured, duplicate, superseded...).
    pub ignored: Family<ReasonLabel, Counter>,
    /// Messages consumed, by what became of them (enqueued, duplicate, ignored, refused...).
    pub events: Family<OutcomeLabel, Counter>,
    pub in_flight: Gauge,
    registry: Arc<Registry>,
}

impl Metrics {
    /// Registers the families under `osbs_<service>_…`.
    pub fn new(service: &str) -> Metrics {
        let mut registry = Registry::with_prefix(format!("osbs_{}", service.replace('-', "_")));
        let builds = Family::<StateLabel, Counter>::default();
        let step_seconds = Family::<StepLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 16))
        });
        let queue_lag_seconds = Family::<QueueLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 12))
        });
        let retries = Family::<ReasonLabel, Counter>::default();
        let dead_letters = Family::<QueueLabel, Counter>::default();
        let ignored = Family::<ReasonLabel, Counter>::default();
        let events = Family::<OutcomeLabel, Counter>::default();
        let in_flight = Gauge::default();
        registry.register(
            "builds",
            "Build state transitions made by this service",
            builds.clone(),
        );
        registry.register(
            "step_seconds",
            "Duration of each build step",
            step_seconds.clone(),
        );
        registry.register(
            "queue_lag_seconds",
            "Time from a message being sent to being taken",
            queue_lag_seconds.clone(),
        );
        registry.register("retries", "Retried operations", retries.clone());
        registry.register(
            "dead_letters",
            "Messages dead-lettered, by queue",
            dead_letters.clone(),
        );
        registry.register(
            "ignored",
            "Messages accepted but not acted on, by reason",
            ignored.clone(),
        );
        registry.register("events", "Messages consumed, by outcome", events.clone());
        registry.register("in_flight", "Messages being handled now", in_flight.clone());
        Metrics {
            builds,
            step_seconds,
            queue_lag_seconds,
            retries,
            dead_letters,
            ignored,
            events,
            in_flight,
            registry: Arc::new(registry),
        }
    }

    pub fn count_state(&self, state: osbs_proto::BuildState) {
        self.builds
            .get_or_create(&StateLabel {
                state: state.name().to_owned(),
            })
            .inc();
    }

    pub fn count_dead_letter(&self, queue: &str) {
        self.dead_letters
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .inc();
    }

    pub fn count_ignored(&self, reason: &str) {
        self.ignored
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn count_event(&self, outcome: &str) {
        self.events
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn count_retry(&self, reason: &str) {
        self.retries
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn observe_step(&self, step: &str, seconds: f64) {
        self.step_seconds
            .get_or_create(&StepLabel {
                step: step.to_owned(),
            })
            .observe(seconds);
    }

    pub fn observe_lag(&self, queue: &str, seconds: f64) {
        self.queue_lag_seconds
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Readiness of a service: not ready until it says so, and not ready again while it drains.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    detail: Arc<Mutex<String>>,
}

impl Health {
    pub fn set_ready(&self, ready: bool, detail: impl Into<String>) {
        self.ready.store(ready, Ordering::SeqCst);
        *self.detail.lock().expect("health detail lock") = detail.into();
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn report(&self) -> (StatusCode, String) {
        let detail = self.detail.lock().expect("health detail lock").clone();
        if self.is_ready() {
            (StatusCode::OK, format!("ok {detail}\n"))
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready {detail}\n"),
            )
        }
    }
}

/// Serves `/healthz` and `/metrics` on `listen` until `shutdown`. Returns the bound address
/// (`listen` may use port 0).
pub async fn serve(
    listen: SocketAddr,
    health: Health,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {listen} for /healthz and /metrics: {error} (change `http_listen` in the service's section)"),
        )
    })?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(|State((health, _)): State<(Health, Metrics)>| async move { health.report() }),
        )
        .route(
            "/metrics",
            get(|State((_, metrics)): State<(Health, Metrics)>| async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }),
        )
        .with_state((health, metrics));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(error = %error, "health/metrics endpoint stopped");
        }
    });
    Ok(bound)
}
