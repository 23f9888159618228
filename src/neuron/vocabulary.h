// neuron/vocabulary.h: the words every layer of the core shares (time, ids,
// status and error codes, validation errors, the POST paths and nack kinds of
// PROTOCOL.md). It includes nothing of the core, so the SSE parser, the frame
// codec and the schema checks never depend on the engine above them.
//
//   Status s = engine.start(now);
//   if (!s.ok()) report(error_code_name(s.code), s.message);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

// Marks a function that runs rarely (setup, commands, errors, shutdown): it
// is built for size and not inlined into the lease path, even in a file
// built for speed (natively; the package's wasm builds every file for size
// and inlines more in the lease path's; measured in web/README.md,
// Performance).
#if defined(__clang__)
#define NEURON_COLD __attribute__((cold, minsize))
#else
#define NEURON_COLD __attribute__((cold))
#endif

namespace neuron {

// Milliseconds since the Unix epoch, from a clock that never goes backwards
// (engine.h, "now"). Outgoing `sentAt` / `startedAt` stamps are made from it.
using TimeMs = std::int64_t;

// Ids the engine hands out and the host reports back. Never 0; a report for
// an id the engine no longer knows is ignored.
using StreamId = std::uint64_t;   // one per OpenStream
using RequestId = std::uint64_t;  // one per Post (a retry is a new Post)
using HandlerId = std::uint64_t;  // one per lease accepted (StartHandler)

// ---------------------------------------------------------------- errors ----

enum class ErrorCode : std::uint8_t {
  kOk = 0,
  kInvalidConfig,           // Config out of range; message names the field
  kInvalidCapability,       // handle(): bad type, scope, concurrency or schema
  kDuplicateCapability,     // handle(): type already registered
  kHandleAfterStart,        // handle() after start()
  kNoHandlers,              // start() with no capability
  kUnknownCapability,       // update_capability() on a type never handled
  kStopped,                 // start()/update_capability() after stop()
  kRegistrationRejected,    // gateway answered 403 to register (RegistrationError)
  kStreamFailed,            // stream open failed / stream lost (reconnect follows)
  kFrameTooLarge,           // an event's data exceeded max_frame_bytes; dropped
  kMalformedFrame,          // an event that is not a valid frame; dropped
  kMalformedLease,          // rule 4
  kPostFailed,              // a POST failed for good (after its retries)
};

// Stable lowercase name, e.g. "registration-rejected"; used as `code` in JS.
std::string_view error_code_name(ErrorCode code);

// The result of a command. `[[nodiscard]]`: a failed command changed nothing.
struct [[nodiscard]] Status {
  ErrorCode code = ErrorCode::kOk;
  std::string message;  // says what was wrong and what to do
  int http_status = 0;  // kRegistrationRejected: the gateway's status (403)

  bool ok() const { return code == ErrorCode::kOk; }
  static Status Ok() { return {}; }
};

// One schema violation, as in a schema-mismatch nack: `path` is a JSON Pointer
// into the validated value ("" is the root).
struct ValidationError {
  std::string path;
  std::string message;
};

// ----------------------------------------------------------------- the wire --

// The POST endpoints of PROTOCOL.md 1.1.
enum class PostPath : std::uint8_t {
  kRegister, kUpdateCapability, kHeartbeat, kAck, kNack, kProgress
};
std::string_view post_path_string(PostPath path);  // "/neuron/register", ...

// A nack's `kind` (PROTOCOL.md 2.1).
enum class NackKind : std::uint8_t { kRetryable, kTerminal, kSchemaMismatch, kCancelled };
std::string_view nack_kind_string(NackKind kind);  // "retryable", ...

}  // namespace neuron
