// Leases: PROTOCOL.md section 3, rules 2 to 11 and 13. Where a lease waits:
// its capability's FIFO (Capability::queue) until a slot is free; then it
// runs (the running list of engine/lease_table.h) until its handler reports,
// and ends with exactly one terminal frame, posted through engine/requests.cpp.
//
//   rule 2   a known lease id (queued, running, or finished recently) is ignored
//   rule 3   no handler / revoked / stopping: nack retryable, handler not called
//   rule 4   missing ids: error event; nack terminal MALFORMED_LEASE if it can
//   rule 5   input failing inputSchema: nack schema-mismatch
//   rule 6   FIFO per capability, at most `concurrency` running
//   rule 7   output checked against outputSchema, then ack; throw -> nack
//   rule 8   cancel: queued -> nack cancelled; running -> signal, nack cancelled
//   rule 9   revocation: queued -> nack; running -> signal, nack (CAPABILITY_REVOKED)
//   rule 10  progress: one POST in flight per lease, newer updates merged
//   rule 11  one terminal frame per accepted lease (lost leases: none)
//   1.3      lostLeases: the handler's signal fires, nothing is posted
#include "neuron/engine/state.h"

#include <algorithm>

namespace neuron {

std::optional<std::uint32_t> Engine::State::capability_index(std::string_view type) const {
  // Few capabilities per neuron: a scan beats hashing a std::string key.
  for (std::uint32_t i = 0; i < caps.size(); ++i) {
    if (caps[i].spec.type == type) return i;
  }
  return std::nullopt;
}

void Engine::State::erase_lease(std::uint64_t handle) {
  if (const Lease* lease = leases.get(handle)) release_task(lease->host_ref);
  leases.erase(handle);
}

void Engine::State::accept_lease(TimeMs now, const LeaseFrame& f, std::uint32_t host_ref, bool input_vouched) {
  ++stats.leases_received;
  // Every way out below but the last gives the host's task back.
  struct Release {
    State& s;
    std::uint32_t host_ref;
    ~Release() { s.release_task(host_ref); }
  } release{*this, host_ref};
  leases.forget_expired(now);
  if (f.lease_id.empty() || f.task_id.empty() || f.type.empty()) {
    const char* missing = f.lease_id.empty() ? "leaseId" : f.task_id.empty() ? "task.taskId" : "task.type";
    emit_error(fail(ErrorCode::kMalformedLease, std::string("lease: ") + missing + " is missing or not a string"));
    if (!f.lease_id.empty() && !f.task_id.empty() && !leases.is_known(f.lease_id)) {
      nack_unstarted(now, f.lease_id, f.task_id, NackKind::kTerminal,
                     std::string("malformed lease: ") + missing + " is missing", "MALFORMED_LEASE");
    }
    return;
  }
  if (leases.is_known(f.lease_id)) {
    ++stats.leases_duplicate;
    if (logs(LogLevel::kDebug))
      log(LogLevel::kDebug, "duplicate lease ignored", Meta().str("leaseId", f.lease_id).str("taskId", f.task_id));
    return;
  }
  if (stopping) {
    return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kRetryable, "neuron is shutting down", "SHUTTING_DOWN");
  }
  const std::optional<std::uint32_t> index = capability_index(f.type);
  if (!index) {
    return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kRetryable,
                          "no handler for capability " + std::string(f.type), "NO_HANDLER");
  }
  Capability& cap = caps[*index];
  if (cap.revoked) {
    return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kRetryable,
                          "capability " + cap.spec.type + " was revoked", "CAPABILITY_REVOKED");
  }
  if (cap.input_schema && !input_vouched) {
    // An absent input is checked as null.
    const std::string_view input_text = f.has_input ? f.input_text : std::string_view("null");
    std::vector<ValidationError> errors;
    // The frame's one pass built the input when it came as bytes (decoder
    // .build_lease_inputs); else it is parsed here.
    std::string error;
    const rapidjson::Value* input = f.input_value ? f.input_value : decoder.parse(input_text, error);
    if (!input) errors.push_back({"", "input cannot be checked: " + error});
    // When the fast path is not sure, the validator reads the text as the
    // parse did: lone surrogate escapes repaired (frames.h), as they are in
    // an output.
    auto validated = [&] {
      if (cap.input_schema->certainly_valid(*input)) return true;
      std::string repaired(input_text);
      replace_lone_surrogate_escapes(repaired.data(), repaired.size());
      return cap.input_schema->validate_without_fast_path(repaired, errors);
    };
    if (!input || !validated()) {
      return nack_unstarted(now, f.lease_id, f.task_id, NackKind::kSchemaMismatch,
                            "input does not match the capability's inputSchema", "", errors);
    }
  }
  const std::uint64_t handle = leases.add(f.lease_id);
  Lease& lease = *leases.get(handle);
  lease.task_id.assign(f.task_id);
  lease.capability = *index;
  lease.task_json.assign(f.task_text);
  if (f.has_input && !host_ref) {  // a frame's text: its input is inside its task
    lease.input_at = static_cast<std::uint32_t>(f.input_text.data() - f.task_text.data());
    lease.input_size = static_cast<std::uint32_t>(f.input_text.size());
  }
  lease.host_ref = host_ref;
  release.host_ref = 0;  // the lease holds it now
  cap.queue.push_back(handle);
  if (logs(LogLevel::kDebug)) {
    log(LogLevel::kDebug, "lease received",
        Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id).str("capability", cap.spec.type));
  }
  pump(now, *index);
}

// A lease refused before it was queued still gets its one terminal frame.
void Engine::State::nack_unstarted(TimeMs now, std::string_view lease_id, std::string_view task_id, NackKind kind,
                                   std::string_view reason, std::string_view code,
                                   const std::vector<ValidationError>& errors) {
  if (logs(LogLevel::kInfo)) {
    log(LogLevel::kInfo, "lease refused",
        Meta().str("leaseId", lease_id).str("taskId", task_id).str("kind", nack_kind_string(kind)).str("code", code)
            .str("reason", reason));
  }
  leases.remember(now, lease_id);
  Request req;
  req.path = PostPath::kNack;
  encode_nack(req.body, config.neuron_id, now, lease_id, task_id, kind, reason, code, errors);
  req.lease_id.assign(lease_id);
  count_nack(kind);
  post(now, std::move(req));
}

void Engine::State::count_nack(NackKind kind) {
  switch (kind) {
    case NackKind::kRetryable: ++stats.nacks_retryable; break;
    case NackKind::kTerminal: ++stats.nacks_terminal; break;
    case NackKind::kSchemaMismatch: ++stats.nacks_schema_mismatch; break;
    case NackKind::kCancelled: ++stats.nacks_cancelled; break;
  }
}

void Engine::State::pump(TimeMs now, std::uint32_t index) {
  Capability& cap = caps[index];
  while (cap.running < cap.concurrency && !cap.queue.empty()) {
    const std::uint64_t handle = cap.queue.front();
    cap.queue.pop_front();
    Lease& lease = *leases.get(handle);
    leases.start_running(handle);
    lease.started_at = now;
    ++cap.running;
    ++running_not_ended;
    // The handler gets the task text; the engine needs it no more, but the
    // action points into it until the next call.
    const std::string& task_json = graveyard.keep(std::move(lease.task_json));
    lease.task_json = std::string();
    actions.emplace_back(StartHandler{handle, index, lease.lease_id, task_json, lease.host_ref,
                                      std::string_view(task_json).substr(lease.input_at, lease.input_size)});
    lease.host_ref = 0;
  }
}

void Engine::State::unqueue(std::uint64_t handle, std::uint32_t capability) {
  caps[capability].queue.erase(handle);
}

void Engine::State::handler_done(TimeMs now, std::uint64_t handle, HandlerOutcome& outcome) {
  Lease* found = leases.get(handle);
  if (!found || !found->running) {
    if (outcome.host_builds_ack) actions.emplace_back(ReleaseOutput{handle});  // nothing will use it
    return;
  }
  Lease& lease = *found;
  const std::uint32_t index = lease.capability;
  leases.stop_running(handle);
  --caps[index].running;
  if (lease.ended) {
    erase_lease(handle);
  } else {
    --running_not_ended;
    if (lease.verdict) {
      Verdict verdict = std::move(*lease.verdict);
      finish(now, handle, lease, verdict.kind, verdict.reason, verdict.code, {});
    } else {
      complete(now, handle, lease, outcome);
    }
  }
  if (outcome.host_builds_ack) actions.emplace_back(ReleaseOutput{handle});  // no ack took the output
  if (!stopping) pump(now, index);
  maybe_finish_stop(now);
}

// Rule 7: how the handler ended decides the one terminal frame.
void Engine::State::complete(TimeMs now, std::uint64_t handle, Lease& lease, HandlerOutcome& outcome) {
  const Capability& cap = caps[lease.capability];
  switch (outcome.result) {
    case HandlerResult::kReturned: {
      // An output the host keeps has no JSON here: the host vouched for it,
      // and for its schema (engine.h).
      const bool host_keeps = outcome.host_builds_ack && outcome.host_keeps_output;
      if (!host_keeps) {
        replace_lone_surrogate_escapes(outcome.output_json.data(), outcome.output_json.size());
        std::vector<ValidationError> errors;
        if (cap.output_schema && !outcome.output_vouched) {
          std::string error;
          const rapidjson::Value* output = decoder.parse(outcome.output_json, error);
          if (!output) {
            finish(now, handle, lease, NackKind::kTerminal, "handler output is not JSON: " + error,
                   "INVALID_OUTPUT", {});
            return;
          }
          if (!cap.output_schema->validate(outcome.output_json, *output, errors)) {
            finish(now, handle, lease, NackKind::kSchemaMismatch,
                   "output does not match the capability's outputSchema", "", errors);
            return;
          }
        } else if (outcome.output_is_json) {
          if (!nests_within_limit(outcome.output_json)) {
            finish(now, handle, lease, NackKind::kTerminal,
                   "handler output is not JSON: it nests deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                   "INVALID_OUTPUT", {});
            return;
          }
        } else if (std::string why; !is_well_formed_json(outcome.output_json, json_scratch, &why)) {
          finish(now, handle, lease, NackKind::kTerminal, "handler output is not JSON: " + why, "INVALID_OUTPUT",
                 {});
          return;
        }
      }
      if (logs(LogLevel::kInfo)) {
        log(LogLevel::kInfo, "lease acked",
            Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id).str("capability", cap.spec.type)
                .num("durationMs", now - lease.started_at));
      }
      Request req;
      req.path = PostPath::kAck;
      if (outcome.host_builds_ack) {
        // Kept to encode the frame should it have to be sent again.
        req.host_ack = true;
        req.host_keeps_output = host_keeps;
        req.host_json = host_keeps && outcome.host_writes_json;
        req.task_id = lease.task_id;
        if (!host_keeps) req.output_json = std::move(outcome.output_json);
        req.duration_ms = now - lease.started_at;
      } else {
        encode_ack(req.body, config.neuron_id, now, lease.lease_id, lease.task_id, outcome.output_json,
                   now - lease.started_at);
      }
      req.lease_id = lease.lease_id;
      req.lease = handle;
      ++stats.leases_acked;
      post_terminal(now, lease, handle, std::move(req));
      end_lease(now, handle, lease);
      outcome.host_builds_ack = false;  // the ack took the output: it is released when the ack settles
      return;
    }
    case HandlerResult::kThrew:
      finish(now, handle, lease, NackKind::kRetryable,
             outcome.reason.empty() ? std::string("handler threw") : outcome.reason, outcome.code, {});
      return;
    case HandlerResult::kFailed:
      finish(now, handle, lease, NackKind::kTerminal,
             outcome.reason.empty() ? std::string("handler failed") : outcome.reason, outcome.code, {});
      return;
    case HandlerResult::kInputInvalid:
      finish(now, handle, lease, NackKind::kSchemaMismatch, "input does not match the capability's schema", "",
             outcome.errors);
      return;
    case HandlerResult::kOutputInvalid:
      finish(now, handle, lease, NackKind::kSchemaMismatch, "output does not match the capability's schema", "",
             outcome.errors);
      return;
  }
}

// Posts the lease's terminal nack (acks go through complete()).
void Engine::State::finish(TimeMs now, std::uint64_t handle, Lease& lease, NackKind kind, std::string_view reason,
                           std::string_view code, const std::vector<ValidationError>& errors) {
  if (logs(LogLevel::kInfo)) {
    log(LogLevel::kInfo, "lease nacked",
        Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id)
            .str("capability", caps[lease.capability].spec.type).str("kind", nack_kind_string(kind))
            .str("reason", reason));
  }
  Request req;
  req.path = PostPath::kNack;
  encode_nack(req.body, config.neuron_id, now, lease.lease_id, lease.task_id, kind, reason, code, errors);
  req.lease_id = lease.lease_id;
  req.lease = handle;
  count_nack(kind);
  post_terminal(now, lease, handle, std::move(req));
  end_lease(now, handle, lease);
}

void Engine::State::end_lease(TimeMs now, std::uint64_t handle, Lease& lease) {
  if (lease.running && !lease.ended) --running_not_ended;
  lease.ended = true;
  lease.progress_pending.reset();
  leases.remember(now, lease.lease_id);
  if (!lease.running) erase_lease(handle);
}

void Engine::State::abort_running(std::uint64_t handle, Lease& lease, AbortReason reason, Verdict verdict) {
  if (lease.verdict) return;  // the first decision stands
  lease.verdict = std::make_unique<Verdict>(std::move(verdict));
  actions.emplace_back(AbortHandler{handle, reason});
}

// Rule 8.
void Engine::State::cancel_lease(TimeMs now, std::string_view lease_id, std::string_view reason) {
  const std::optional<std::uint64_t> handle = leases.find(lease_id);
  if (!handle) {
    if (logs(LogLevel::kDebug)) log(LogLevel::kDebug, "cancel for unknown lease ignored", Meta().str("leaseId", lease_id));
    return;
  }
  Lease& lease = *leases.get(*handle);
  if (lease.ended) return;
  if (!lease.running) {
    unqueue(*handle, lease.capability);
    return finish(now, *handle, lease, NackKind::kCancelled, reason, "", {});
  }
  abort_running(*handle, lease, AbortReason::kCancelled, Verdict{NackKind::kCancelled, std::string(reason), ""});
}

// Rule 9.
NEURON_COLD void Engine::State::revoke_capability(TimeMs now, std::string_view type, std::string_view why) {
  const std::optional<std::uint32_t> index = capability_index(type);
  if (!index) {
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "revocation of unknown capability ignored", Meta().str("capability", type));
    return;
  }
  Capability& cap = caps[*index];
  cap.revoked = true;
  const std::string reason =
      "capability " + cap.spec.type + " was revoked" + (why.empty() ? std::string() : ": " + std::string(why));
  if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "capability revoked", Meta().str("capability", cap.spec.type).str("reason", why));
  Fifo<std::uint64_t> queued;
  queued.swap(cap.queue);
  for (; !queued.empty(); queued.pop_front()) {
    const std::uint64_t handle = queued.front();
    finish(now, handle, *leases.get(handle), NackKind::kRetryable, reason, "CAPABILITY_REVOKED", {});
  }
  std::vector<std::uint64_t> running;
  leases.for_each_running([&](std::uint64_t handle, const Lease& lease) {
    if (lease.capability == *index && !lease.ended) running.push_back(handle);
  });
  for (std::uint64_t handle : running) {
    abort_running(handle, *leases.get(handle), AbortReason::kCapabilityRevoked,
                  Verdict{NackKind::kRetryable, reason, "CAPABILITY_REVOKED"});
  }
}

// PROTOCOL.md 1.3: the gateway no longer holds it; nothing is posted for it.
void Engine::State::lose_lease(std::string_view lease_id) {
  const std::optional<std::uint64_t> handle = leases.find(lease_id);
  if (!handle) return;
  Lease& lease = *leases.get(*handle);
  if (lease.ended) return;
  ++stats.leases_lost;
  if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "lease lost", Meta().str("leaseId", lease.lease_id).str("taskId", lease.task_id));
  const bool running = lease.running;
  if (!running) unqueue(*handle, lease.capability);
  if (running) --running_not_ended;
  lease.ended = true;
  lease.progress_pending.reset();
  if (!running) {
    erase_lease(*handle);
  } else if (!lease.verdict) {  // a cancelled or revoked lease's signal already fired
    actions.emplace_back(AbortHandler{*handle, AbortReason::kLeaseLost});
  }
}

// 1.2: never started, so the broker still holds them and redelivers: no
// nack, and their ids are not remembered (the redelivery must be accepted).
NEURON_COLD void Engine::State::drop_queued_leases() {
  for (Capability& cap : caps) {
    for (; !cap.queue.empty(); cap.queue.pop_front()) {
      erase_lease(cap.queue.front());
      ++stats.leases_dropped;
    }
  }
}

// Rule 10.
void Engine::State::progress(TimeMs now, std::uint64_t handle, ProgressUpdate& update) {
  Lease* found = leases.get(handle);
  if (!found || !found->running || found->ended) return;
  Lease& lease = *found;
  if (update.data_json) replace_lone_surrogate_escapes(update.data_json->data(), update.data_json->size());
  if (update.data_json && !is_well_formed_json(*update.data_json, json_scratch)) {
    // ctx.progress() never throws: keep percent and message, drop the field.
    if (logs(LogLevel::kWarn)) log(LogLevel::kWarn, "progress data is not JSON; dropped", Meta().str("leaseId", lease.lease_id));
    update.data_json.reset();
  }
  if (!lease.progress_request) return send_progress(now, handle, lease, update);
  if (!lease.progress_pending) {
    lease.progress_pending = std::make_unique<ProgressUpdate>(std::move(update));
    return;
  }
  ProgressUpdate& pending = *lease.progress_pending;
  if (update.percent) pending.percent = update.percent;
  if (update.message) pending.message = std::move(update.message);
  if (update.data_json) pending.data_json = std::move(update.data_json);
}

void Engine::State::send_progress(TimeMs now, std::uint64_t handle, Lease& lease, const ProgressUpdate& update) {
  Request req;
  req.kind = RequestKind::kProgress;
  req.path = PostPath::kProgress;
  req.lease = handle;
  encode_progress(req.body, config.neuron_id, now, lease.lease_id, lease.task_id, update.percent, update.message,
                  update.data_json);
  lease.progress_request = requests.add(std::move(req));
  pump_requests(now);
}

// Schemas are compiled when the neuron starts: in the wasm package the
// validator is a module of its own, loaded by then.
NEURON_COLD Status Engine::State::compile_schemas() {
  for (Capability& cap : caps) {
    if (cap.spec.host_validates) continue;
    std::string error;
    if (!cap.spec.input_schema_json.empty() && !cap.input_schema) {
      cap.input_schema = CompiledSchema::compile(cap.spec.input_schema_json, error);
      if (!cap.input_schema) {
        return fail(ErrorCode::kInvalidCapability, "capability " + cap.spec.type + ": inputSchema: " + error);
      }
      decoder.build_lease_inputs(true);
    }
    if (!cap.spec.output_schema_json.empty() && !cap.output_schema) {
      cap.output_schema = CompiledSchema::compile(cap.spec.output_schema_json, error);
      if (!cap.output_schema) {
        return fail(ErrorCode::kInvalidCapability, "capability " + cap.spec.type + ": outputSchema: " + error);
      }
    }
  }
  return Status::Ok();
}

}  // namespace neuron
