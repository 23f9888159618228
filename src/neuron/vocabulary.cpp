#include "neuron/vocabulary.h"

namespace neuron {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidConfig: return "invalid-config";
    case ErrorCode::kInvalidCapability: return "invalid-capability";
    case ErrorCode::kDuplicateCapability: return "duplicate-capability";
    case ErrorCode::kHandleAfterStart: return "handle-after-start";
    case ErrorCode::kNoHandlers: return "no-handlers";
    case ErrorCode::kUnknownCapability: return "unknown-capability";
    case ErrorCode::kStopped: return "stopped";
    case ErrorCode::kRegistrationRejected: return "registration-rejected";
    case ErrorCode::kStreamFailed: return "stream-failed";
    case ErrorCode::kFrameTooLarge: return "frame-too-large";
    case ErrorCode::kMalformedFrame: return "malformed-frame";
    case ErrorCode::kMalformedLease: return "malformed-lease";
    case ErrorCode::kPostFailed: return "post-failed";
  }
  return "unknown";
}

std::string_view post_path_string(PostPath path) {
  switch (path) {
    case PostPath::kRegister: return "/neuron/register";
    case PostPath::kUpdateCapability: return "/neuron/update-capability";
    case PostPath::kHeartbeat: return "/neuron/heartbeat";
    case PostPath::kAck: return "/neuron/ack";
    case PostPath::kNack: return "/neuron/nack";
    case PostPath::kProgress: return "/neuron/progress";
  }
  return "";
}

std::string_view nack_kind_string(NackKind kind) {
  switch (kind) {
    case NackKind::kRetryable: return "retryable";
    case NackKind::kTerminal: return "terminal";
    case NackKind::kSchemaMismatch: return "schema-mismatch";
    case NackKind::kCancelled: return "cancelled";
  }
  return "retryable";
}

}  // namespace neuron
