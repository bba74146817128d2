//! Resolution of a target: every parameter of an endpoint (its own, else the top-level one),
//! with the path it came from, checked before anything runs.

use super::*;

impl GrpcTask {
    pub(super) fn resolve(&self, ep: Option<(&String, &GrpcTask)>) -> Result<Target, TaskError> {
        let ep_prefix = ep
            .map(|(n, _)| format!("endpoints.{n}."))
            .unwrap_or_default();
        // Pick the endpoint's value if it has one, else the top-level one, with its path.
        macro_rules! pick {
            ($field:ident, $name:literal) => {{
                match ep.and_then(|(_, e)| e.$field.clone()) {
                    Some(v) => Some(At {
                        value: v,
                        field: format!("{ep_prefix}{}", $name),
                    }),
                    None => self.$field.clone().map(|v| At {
                        value: v,
                        field: $name.to_string(),
                    }),
                }
            }};
        }
        let prefix = match ep {
            Some((name, _)) => format!("grpc-{name}"),
            None => "grpc".to_string(),
        };
        let host = pick!(host, "host").ok_or_else(|| {
            TaskError::invalid(
                format!("{ep_prefix}host"),
                "missing; set the server address, e.g. 127.0.0.1:50051",
            )
        })?;
        if host.value.trim().is_empty() {
            return Err(TaskError::invalid(
                &host.field,
                "empty; set the server address, e.g. 127.0.0.1:50051",
            ));
        }
        crate::model::limits::check_host_port(&host.value)
            .map_err(|m| TaskError::invalid(&host.field, m))?;
        let call = pick!(call, "call").ok_or_else(|| {
            TaskError::invalid(
                format!("{ep_prefix}call"),
                "missing; set the method to call, e.g. helloworld.Greeter/SayHello",
            )
        })?;
        let (service, method) = descriptor::split_call(&call.value).ok_or_else(|| {
            TaskError::invalid(
                &call.field,
                format!(
                    "{:?} is not a method name; use package.Service/Method, e.g. helloworld.Greeter/SayHello",
                    call.value
                ),
            )
        })?;

        let candidates = [
            pick!(proto, "proto").map(|a| At {
                value: Source::ProtoFile(a.value),
                field: a.field,
            }),
            pick!(proto_text, "protoText").map(|a| At {
                value: Source::ProtoText(a.value),
                field: a.field,
            }),
            pick!(proto_url, "protoURL").map(|a| At {
                value: Source::ProtoUrl(a.value),
                field: a.field,
            }),
            pick!(protoset, "protoset").map(|a| At {
                value: Source::Protoset(a.value),
                field: a.field,
            }),
        ];
        let mut given: Vec<At<Source>> = candidates.into_iter().flatten().collect();
        // Iter8's chart renders `proto: /tmp/ghz.proto` beside `protoURL` (it downloaded the
        // URL there with curl): the URL is the source; the runner fetches it itself.
        if given.iter().any(|g| matches!(g.value, Source::ProtoUrl(_))) {
            given.retain(|g| !matches!(g.value, Source::ProtoFile(_)));
        }
        if given.len() > 1 {
            return Err(TaskError::invalid(
                &given[1].field,
                format!(
                    "give only one of proto, protoText, protoURL and protoset (also set: {})",
                    given[0].field
                ),
            ));
        }
        let source = given.into_iter().next().unwrap_or(At {
            value: Source::Reflection,
            field: format!("{ep_prefix}call"),
        });
        match &source.value {
            Source::ProtoFile(s)
            | Source::ProtoText(s)
            | Source::Protoset(s)
            | Source::ProtoUrl(s)
                if s.trim().is_empty() =>
            {
                return Err(TaskError::invalid(&source.field, "empty"));
            }
            Source::ProtoUrl(u) => check_url(u, &source.field)?,
            _ => {}
        }
        let import_paths = match ep {
            Some((_, e)) if !e.import_paths.is_empty() => e.import_paths.clone(),
            _ => self.import_paths.clone(),
        }
        .into_iter()
        .map(PathBuf::from)
        .collect();

        let data = pick!(data, "data");
        let data_url = pick!(data_url, "dataURL");
        // As Iter8's chart renders them, a file beside its URL is the URL's download: the
        // URL wins.
        let data_file = pick!(data_file, "data-file").filter(|_| data_url.is_none());
        let binary_url = pick!(binary_data_url, "binaryDataURL");
        let binary = match (binary_url, pick!(binary_file, "binary-file")) {
            (Some(u), _) => {
                check_url(&u.value, &u.field)?;
                Some(At {
                    value: Binary::Url(u.value),
                    field: u.field,
                })
            }
            (None, Some(f)) => Some(At {
                value: Binary::File(f.value),
                field: f.field,
            }),
            (None, None) => None,
        };
        let others: Vec<&str> = [
            data_url.as_ref().map(|a| a.field.as_str()),
            data_file.as_ref().map(|a| a.field.as_str()),
            binary.as_ref().map(|a| a.field.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if others.len() > 1 {
            return Err(TaskError::invalid(
                others[1],
                format!("give one request source; also set: {}", others[0]),
            ));
        }
        if let (Some(d), Some(other)) = (&data, others.first()) {
            if data_url.is_none() {
                return Err(TaskError::invalid(
                    *other,
                    format!("give either {} or {other}, not both", d.field),
                ));
            }
        }
        if let (Some(d), Some(u)) = (&data, &data_url) {
            return Err(TaskError::invalid(
                &u.field,
                format!("give either {} or {}, not both", d.field, u.field),
            ));
        }
        if let Some(u) = &data_url {
            check_url(&u.value, &u.field)?;
        }
        let data = data.unwrap_or(At {
            value: serde_json::Value::Null,
            field: format!("{ep_prefix}data"),
        });
        check_data_shape(&data.value, &data.field)?;
        let data = At {
            value: Some(data.value),
            field: data.field,
        };

        let metadata = pick!(metadata, "metadata").unwrap_or(At {
            value: BTreeMap::new(),
            field: format!("{ep_prefix}metadata"),
        });
        metadata_map(&metadata.value)
            .map_err(|(k, m)| TaskError::invalid(format!("{}.{k}", metadata.field), m))?;
        let metadata_url = pick!(metadata_url, "metadataURL");
        if let Some(u) = &metadata_url {
            check_url(&u.value, &u.field)?;
        }
        let metadata_file =
            pick!(metadata_file, "metadata-file").filter(|_| metadata_url.is_none());

        let total = pick!(total, "total");
        let concurrency = pick!(concurrency, "concurrency");
        let connections = pick!(connections, "connections");
        let rps = pick!(rps, "rps");
        let duration = pick!(duration, "duration");
        let own_load = ep.is_some_and(|(_, e)| {
            e.stages.is_some() || e.rps.is_some() || e.total.is_some() || e.duration.is_some()
        });
        let stages = match ep.and_then(|(_, e)| e.stages.clone()) {
            Some(v) => Some(At {
                value: v,
                field: format!("{ep_prefix}stages"),
            }),
            None if own_load => None,
            None => self.stages.clone().map(|v| At {
                value: v,
                field: "stages".to_string(),
            }),
        };
        if let Some(st) = &stages {
            check_stages(&st.value)
                .map_err(|(f, m)| TaskError::invalid(format!("{}{f}", st.field), m))?;
            if let Some(f) = [
                rps.as_ref().map(|a| &a.field),
                total.as_ref().map(|a| &a.field),
                duration.as_ref().map(|a| &a.field),
            ]
            .into_iter()
            .flatten()
            .next()
            {
                return Err(TaskError::invalid(
                    f,
                    "stages set the rate and the length of the load; remove this key (or stages)",
                ));
            }
        }
        if let Some(t) = &total {
            if t.value == 0 {
                return Err(TaskError::invalid(&t.field, "must be at least 1"));
            }
        }
        let concurrency_v = concurrency
            .as_ref()
            .map(|c| c.value)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency_v == 0 || concurrency_v > 100_000 {
            return Err(TaskError::invalid(
                concurrency.map(|c| c.field).unwrap_or_default(),
                "must be between 1 and 100000",
            ));
        }
        let connections_v = connections
            .as_ref()
            .map(|c| c.value)
            .unwrap_or(DEFAULT_CONNECTIONS);
        if connections_v == 0 || connections_v > concurrency_v {
            return Err(TaskError::invalid(
                connections.map(|c| c.field).unwrap_or_else(|| format!("{ep_prefix}connections")),
                format!(
                    "must be between 1 and concurrency ({concurrency_v}); each connection needs a worker"
                ),
            ));
        }
        let rps_v = match rps {
            Some(r) if !r.value.is_finite() || r.value < 0.0 => {
                return Err(TaskError::invalid(
                    &r.field,
                    "must be 0 (as fast as possible) or a positive number of requests per second",
                ))
            }
            Some(r) if r.value > 0.0 => {
                crate::model::limits::check_qps(r.value)
                    .map_err(|m| TaskError::invalid(&r.field, m))?;
                Some(r.value)
            }
            _ => None,
        };
        let duration_v = match duration {
            Some(d) if d.value.0.is_zero() => {
                return Err(TaskError::invalid(
                    &d.field,
                    "must be longer than 0, e.g. 30s",
                ))
            }
            Some(d) => Some(d.value.0),
            None => None,
        };
        let plan = Plan {
            total: if duration_v.is_some() {
                None
            } else {
                Some(total.map(|t| t.value).unwrap_or(DEFAULT_TOTAL))
            },
            duration: duration_v,
            rps: rps_v,
            concurrency: concurrency_v as usize,
        };
        let warmup_n = pick!(warmup_num_requests, "warmupNumRequests")
            .or_else(|| pick!(skip_first, "skipFirst"));
        let warmup_d = pick!(warmup_duration, "warmupDuration");
        if let (Some(_), Some(d)) = (&warmup_n, &warmup_d) {
            return Err(TaskError::invalid(
                &d.field,
                "give either warmupNumRequests or warmupDuration, not both",
            ));
        }
        let warmup = match (warmup_n, warmup_d) {
            (Some(n), _) if n.value > 0 => Some(Plan {
                total: Some(n.value),
                duration: None,
                ..plan
            }),
            (_, Some(d)) if !d.value.0.is_zero() => Some(Plan {
                total: None,
                duration: Some(d.value.0),
                ..plan
            }),
            _ => None,
        };
        let timeout = pick!(timeout, "timeout");
        if let Some(t) = &timeout {
            if t.value.0.is_zero() {
                return Err(TaskError::invalid(
                    &t.field,
                    "must be longer than 0, e.g. 20s",
                ));
            }
        }
        let connect_timeout = pick!(connect_timeout, "connect-timeout");
        if let Some(t) = &connect_timeout {
            if t.value.0.is_zero() {
                return Err(TaskError::invalid(
                    &t.field,
                    "must be longer than 0, e.g. 10s",
                ));
            }
        }
        let cacert = pick!(cacert, "cacert");
        let cname = pick!(cname, "cname").map(|c| c.value);
        let insecure = pick!(insecure, "insecure").map(|i| i.value);
        let tls = match insecure {
            Some(true) => None,
            Some(false) => Some((cacert, cname)),
            None if cacert.is_some() => Some((cacert, cname)),
            None => None,
        };
        let extra = match ep {
            Some((_, e)) if !e.percentiles.is_empty() => &e.percentiles,
            _ => &self.percentiles,
        };
        for p in extra {
            if !(p.is_finite() && *p > 0.0 && *p <= 100.0) {
                return Err(TaskError::invalid(
                    format!("{ep_prefix}percentiles"),
                    format!("{p} is not a percentile; use numbers in (0, 100], e.g. 99.99"),
                ));
            }
        }
        let percentiles = all_percentiles(extra);
        let stream_interval = pick!(stream_interval, "stream-interval");
        let stream_call_duration = pick!(stream_call_duration, "stream-call-duration");
        let stream_call_count = pick!(stream_call_count, "stream-call-count");
        if let Some(d) = &stream_call_duration {
            if d.value.0.is_zero() {
                return Err(TaskError::invalid(
                    &d.field,
                    "must be longer than 0, e.g. 500ms (leave it out for no limit)",
                ));
            }
        }
        let stream_field = stream_interval
            .as_ref()
            .map(|a| a.field.clone())
            .or_else(|| stream_call_duration.as_ref().map(|a| a.field.clone()))
            .or_else(|| stream_call_count.as_ref().map(|a| a.field.clone()));
        let stream = StreamParams {
            interval: stream_interval.map(|a| a.value.0),
            call_count: stream_call_count.map(|a| a.value).filter(|c| *c > 0),
            call_duration: stream_call_duration.map(|a| a.value.0),
        };
        let stream_dynamic_messages =
            pick!(stream_dynamic_messages, "stream-dynamic-messages").is_some_and(|a| a.value);
        Ok(Target {
            prefix,
            host,
            call,
            service,
            method,
            source,
            import_paths,
            data,
            data_url,
            data_file,
            binary,
            metadata,
            metadata_url,
            metadata_file,
            plan,
            stages: stages.map(|s| s.value),
            warmup,
            connections: connections_v as usize,
            timeout: timeout.map(|t| t.value.0).unwrap_or(DEFAULT_TIMEOUT),
            connect_timeout: connect_timeout
                .map(|t| t.value.0)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            tls,
            percentiles,
            stream,
            stream_field,
            stream_dynamic_messages,
        })
    }
}
