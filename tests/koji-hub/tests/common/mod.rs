//! A minimal XML-RPC client for the double's own tests, written against the wire format
//! (not the bridge's client), so that these tests check the double alone.

#![allow(dead_code)]

use dxr::{FaultResponse, MethodCall, MethodResponse, Value};
use osbs_koji_hub::rpc::{from_json, to_json};
use serde_json::{Value as Json, json};

/// A session on a hub: raw calls, with koji's headers and call numbers.
#[derive(Debug, Clone)]
pub struct Client {
    pub url: String,
    http: reqwest::Client,
    session: Option<(i64, String)>,
    callnum: i64,
}

/// The outcome of a call: the value, or the fault's (code, text).
pub type Outcome = Result<Json, (i32, String)>;

impl Client {
    pub fn new(url: &str) -> Client {
        Client::with_http(url, reqwest::Client::new())
    }

    pub fn with_http(url: &str, http: reqwest::Client) -> Client {
        Client {
            url: url.to_owned(),
            http,
            session: None,
            callnum: 0,
        }
    }

    /// `login(user, password)`; panics when refused.
    pub async fn login(url: &str, user: &str, password: &str) -> Client {
        let mut client = Client::new(url);
        let info = client
            .call("login", vec![json!(user), json!(password)])
            .await
            .expect("login");
        client.adopt(&info);
        client
    }

    /// Uses the session of a login answer.
    pub fn adopt(&mut self, info: &Json) {
        self.session = Some((
            info["session-id"].as_i64().expect("session-id"),
            info["session-key"]
                .as_str()
                .expect("session-key")
                .to_owned(),
        ));
    }

    fn headers(&mut self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.session {
            Some((id, key)) => {
                self.callnum += 1;
                request
                    .header("Koji-Session-Id", id.to_string())
                    .header("Koji-Session-Key", key)
                    .header("Koji-Callnum", self.callnum.to_string())
            }
            None => request,
        }
    }

    /// Calls `method` with positional `args`.
    pub async fn call(&mut self, method: &str, args: Vec<Json>) -> Outcome {
        self.call_kw(method, args, json!({})).await
    }

    /// Calls `method` with positional `args` and keyword arguments (`__starstar`).
    pub async fn call_kw(&mut self, method: &str, args: Vec<Json>, kwargs: Json) -> Outcome {
        let mut params: Vec<Value> = args.iter().map(from_json).collect();
        if kwargs.as_object().is_some_and(|map| !map.is_empty()) {
            let mut kwargs = kwargs.clone();
            kwargs["__starstar"] = json!(true);
            params.push(from_json(&kwargs));
        }
        let body = MethodCall {
            name: method.to_owned().into(),
            params,
        }
        .to_xml()
        .expect("xml");
        let request = self
            .http
            .post(&self.url)
            .header("Content-Type", "text/xml")
            .body(body);
        let text = self
            .headers(request)
            .send()
            .await
            .expect("hub reachable")
            .text()
            .await
            .expect("hub answer");
        decode(&text)
    }

    /// A fast-upload POST of `chunk` at `offset` into `path/name`.
    pub async fn upload(
        &mut self,
        path: &str,
        name: &str,
        offset: i64,
        chunk: Vec<u8>,
        overwrite: bool,
    ) -> Outcome {
        let mut query = vec![
            ("filename", name.to_owned()),
            ("filepath", path.to_owned()),
            ("fileverify", "adler32".to_owned()),
            ("offset", offset.to_string()),
        ];
        if overwrite {
            query.push(("overwrite", "1".to_owned()));
        }
        let request = self
            .http
            .post(&self.url)
            .query(&query)
            .header("Content-Type", "application/octet-stream")
            .body(chunk);
        // A transport failure (a cut connection) is code -1.
        let response = match self.headers(request).send().await {
            Ok(response) => response.text().await,
            Err(error) => Err(error),
        };
        match response {
            Ok(text) => decode(&text),
            Err(error) => Err((-1, error.to_string())),
        }
    }
}

fn decode(text: &str) -> Outcome {
    let body = text
        .trim_start()
        .strip_prefix("<?xml version='1.0'?>")
        .unwrap_or(text)
        .trim_start();
    if body.contains("<fault>") {
        let fault = FaultResponse::from_xml(body).expect("fault xml").fault;
        return Err((fault.code(), fault.string().to_owned()));
    }
    Ok(to_json(
        &MethodResponse::from_xml(body).expect("response xml").value,
    ))
}

/// Hex adler32 as koji prints it.
pub fn adler32_hex(bytes: &[u8]) -> String {
    osbs_koji_hub::digest::hexdigest("adler32", bytes).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    osbs_koji_hub::digest::hexdigest("sha256", bytes).unwrap()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    osbs_koji_hub::digest::hexdigest("md5", bytes).unwrap()
}
