// See tls_worker.h.
#include "tls/tls_worker.h"

#include <openssl/err.h>

#include <algorithm>

#include "tls/worker_counter_bindings.h"

namespace weir::tls {

using tls_channel::Kind;
using tls_channel::ResetReason;

namespace {

// Outbound room required before an inbound record is taken: what one record can make OpenSSL
// write (a handshake flight with a certificate chain, or a TLS record's plaintext and its alerts).
constexpr uint64_t kOutputMargin = 128 * 1024;

uint16_t kind_of(Kind kind) {
  return static_cast<uint16_t>(kind);
}

// What OpenSSL's error queue says went wrong, for the reset's reason.
ResetReason classify(bool in_handshake) {
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  if (ERR_GET_LIB(error) == ERR_LIB_SSL) {
    switch (ERR_GET_REASON(error)) {
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
      case SSL_R_DATA_LENGTH_TOO_LONG:
        return ResetReason::record_overflow;
      default:
        break;
    }
  }
  return in_handshake ? ResetReason::handshake_failed : ResetReason::protocol_error;
}

// The ex-data slot of a session's SSL holding its worker's WorkerCounters*.
int counters_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's info callback: counts each alert sent or received, by type.
void count_alert(const SSL* ssl, int where, int value) {
  if ((where & SSL_CB_ALERT) == 0) return;
  auto* counters = static_cast<WorkerCounters*>(SSL_get_ex_data(ssl, counters_index()));
  if (counters == nullptr) return;
  const size_t type = alert_index(static_cast<uint8_t>(value & 0xff));  // the description
  ++((where & SSL_CB_READ) != 0 ? counters->alerts_received : counters->alerts_sent)[type];
}

}  // namespace

size_t alert_index(uint8_t code) {
  for (size_t i = 0; i < counters::kTlsAlertTypes.size(); ++i) {
    if (counters::kTlsAlertTypes[i].code == code) return i;
  }
  return counters::kTlsAlertTypes.size();  // other
}

void publish(const WorkerCounters& counters, tls_counters::BlockMemory& block) {
  for (size_t i = 0; i < kWorkerCounterBindings.size(); ++i)
    block.store(i, kWorkerCounterBindings[i].value(counters));
}

void TlsWorker::publish_counters() {
  if (block_ != nullptr) publish(counters_, *block_);
}

struct TlsWorker::Session {
  // The contexts it was opened under (its SSL and the SNI callback point into them): kept until
  // the session ends, also after a certificate reload. First, so it is released last.
  std::shared_ptr<const Contexts> contexts;
  uint64_t id = 0;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;  // ciphertext from the client (owned by ssl)
  BIO* wbio = nullptr;  // ciphertext for the client (owned by ssl)
  SniChoice choice;
  uint64_t ciphertext_seen = 0;
  bool handshake_done = false;
  bool client_ended = false;      // plaintext_end sent toward the backend
  bool ciphertext_ended = false;  // ciphertext_end sent toward the client
  bool has_deadline = false;
  Deadlines::iterator deadline;
};

struct TlsWorker::Channel {
  Channel(shm::ChannelMemory m, int wake_event)
      : memory(std::move(m)),
        in(memory.reader(shm::Side::b, tls_channel::kMaxRecordPayload, wake_event)),
        out(memory.writer(shm::Side::b, tls_channel::kMaxRecordPayload, wake_event)) {}
  shm::ChannelMemory memory;
  shm::RingReader in;
  shm::RingWriter out;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions;
  std::vector<std::pair<uint64_t, ResetReason>> unsent_resets;  // the ring was full
  bool broken = false;
};

TlsWorker::TlsWorker(const Contexts& contexts)
    : contexts_(std::shared_ptr<const Contexts>(), &contexts) {}  // not owned

TlsWorker::TlsWorker(std::shared_ptr<const Contexts> contexts) : contexts_(std::move(contexts)) {}

TlsWorker::~TlsWorker() {
  for (auto& ch : channels_) {
    for (auto& [id, s] : ch->sessions) SSL_free(s->ssl);
  }
}

void TlsWorker::add_channel(shm::ChannelMemory memory, int wake_event) {
  channels_.push_back(std::make_unique<Channel>(std::move(memory), wake_event));
}

size_t TlsWorker::sessions() const {
  size_t n = 0;
  for (const auto& ch : channels_) n += ch->sessions.size();
  return n;
}

bool TlsWorker::poll_once(uint64_t now_ms) {
  bool work = false;
  for (auto& owned : channels_) {
    Channel& ch = *owned;
    if (ch.broken) continue;
    while (!ch.unsent_resets.empty() && ch.out.has_room(shm::record_space(2))) {
      const auto [id, reason] = ch.unsent_resets.back();
      ch.out.try_write(id, kind_of(Kind::reset),
                       std::span(reinterpret_cast<const uint8_t*>(&reason), sizeof reason));
      ch.unsent_resets.pop_back();
      work = true;
    }
    while (true) {
      const auto record = ch.in.peek();
      if (!record) break;
      if (!ch.out.has_room(kOutputMargin)) {
        ++counters_.input_deferred;
        break;
      }
      handle(ch, *record, now_ms);
      ch.in.pop();
      work = true;
    }
    ch.in.release();
    if (work) publish_counters();  // before the dataplane sees what they count
    ch.out.publish();
    if (ch.in.broken() || ch.out.broken()) drop_channel(ch);
  }
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_ms) {
    const auto [ch, id] = deadlines_.begin()->second;
    Session& s = *ch->sessions.at(id);
    fail(*ch, s, ResetReason::handshake_timeout, false);
    publish_counters();
    ch->out.publish();
    work = true;
  }
  return work;
}

bool TlsWorker::prepare_sleep() {
  bool idle = true;
  for (auto& ch : channels_) {
    if (ch->broken) continue;
    if (!ch->unsent_resets.empty()) idle = false;
    // Records waiting: sleep only if they wait for outbound room the dataplane will free.
    if (!ch->in.prepare_sleep() && !ch->out.prepare_sleep(kOutputMargin)) idle = false;
  }
  if (!idle) awake();
  return idle;
}

void TlsWorker::awake() {
  for (auto& ch : channels_) {
    ch->in.awake();
    ch->out.awake();
  }
}

int TlsWorker::next_deadline_in(uint64_t now_ms) const {
  if (deadlines_.empty()) return -1;
  const uint64_t at = deadlines_.begin()->first;
  return at <= now_ms ? 0 : static_cast<int>(std::min<uint64_t>(at - now_ms, 60'000));
}

void TlsWorker::handle(Channel& ch, const shm::Record& record, uint64_t now_ms) {
  if (record.kind == kind_of(Kind::open)) {
    open(ch, record.session, record.payload, now_ms);
    return;
  }
  const auto found = ch.sessions.find(record.session);
  // A record for a session this worker already ended crossed its reset: nothing to do.
  if (found == ch.sessions.end()) return;
  Session& s = *found->second;
  switch (static_cast<Kind>(record.kind)) {
    case Kind::ciphertext:
      on_ciphertext(ch, s, record.payload);
      return;
    case Kind::plaintext:
      on_plaintext(ch, s, record.payload);
      return;
    case Kind::ciphertext_end:
      on_client_end(ch, s);
      return;
    case Kind::plaintext_end:
      on_backend_end(ch, s);
      return;
    case Kind::reset:
      finish(ch, s);
      return;
    default:
      fail(ch, s, ResetReason::bad_record, false);
      return;
  }
}

void TlsWorker::open(Channel& ch, uint64_t id, std::span<const uint8_t> payload, uint64_t now_ms) {
  if (const auto existing = ch.sessions.find(id); existing != ch.sessions.end()) {
    fail(ch, *existing->second, ResetReason::bad_record, false);
    return;
  }
  const auto request = tls_channel::decode_open(payload);
  if (!request) return reset_unknown(ch, id, ResetReason::bad_record);
  const ListenerContexts* listener = contexts_->find(request->listener);
  if (listener == nullptr) return reset_unknown(ch, id, ResetReason::unknown_listener);
  if (ch.sessions.size() >= kMaxSessionsPerChannel)
    return reset_unknown(ch, id, ResetReason::too_many_sessions);
  auto s = std::make_unique<Session>();
  s->contexts = contexts_;
  s->id = id;
  s->ssl = SSL_new(listener->contexts[0].get());
  s->rbio = BIO_new(BIO_s_mem());
  s->wbio = BIO_new(BIO_s_mem());
  // An empty memory BIO reports "retry" rather than EOF: more ciphertext may come.
  BIO_set_mem_eof_return(s->rbio, -1);
  SSL_set_bio(s->ssl, s->rbio, s->wbio);
  SSL_set_accept_state(s->ssl);
  SSL_set_ex_data(s->ssl, Contexts::sni_choice_index(), &s->choice);
  SSL_set_ex_data(s->ssl, counters_index(), &counters_);
  SSL_set_info_callback(s->ssl, count_alert);
  s->deadline = deadlines_.emplace(now_ms + listener->handshake_timeout_ms, std::pair(&ch, id));
  s->has_deadline = true;
  ++counters_.sessions_opened;
  ch.sessions.emplace(id, std::move(s));
}

void TlsWorker::on_ciphertext(Channel& ch, Session& s, std::span<const uint8_t> bytes) {
  counters_.ciphertext_in += bytes.size();
  // A TLS client starts with a handshake record (type 22, version major 3): anything else is not
  // TLS at all, refused before OpenSSL spends anything on it.
  for (size_t i = 0; s.ciphertext_seen + i < 2 && i < bytes.size(); ++i) {
    const uint8_t expected = s.ciphertext_seen + i == 0 ? 0x16 : 0x03;
    if (bytes[i] != expected) return fail(ch, s, ResetReason::not_tls, false);
  }
  s.ciphertext_seen += bytes.size();
  if (!bytes.empty() && BIO_write(s.rbio, bytes.data(), static_cast<int>(bytes.size())) <= 0)
    return fail(ch, s, ResetReason::protocol_error, false);
  drive(ch, s);
}

void TlsWorker::on_plaintext(Channel& ch, Session& s, std::span<const uint8_t> bytes) {
  // The dataplane connects the backend only after handshake_done, so nothing can come before.
  if (!s.handshake_done || s.ciphertext_ended) return fail(ch, s, ResetReason::bad_record, false);
  counters_.plaintext_in += bytes.size();
  ERR_clear_error();
  if (!bytes.empty() && SSL_write(s.ssl, bytes.data(), static_cast<int>(bytes.size())) <= 0)
    return fail(ch, s, classify(false), true);
  if (!flush_ciphertext(ch, s)) fail(ch, s, ResetReason::output_full, false);
}

void TlsWorker::on_client_end(Channel& ch, Session& s) {
  // The client's FIN inside a record, or before the handshake finished: truncated.
  if (!s.handshake_done || BIO_ctrl_pending(s.rbio) > 0 || SSL_has_pending(s.ssl) == 1)
    return fail(ch, s, ResetReason::truncated, false);
  if (!s.client_ended) {
    if (!ch.out.try_write(s.id, kind_of(Kind::plaintext_end), {}))
      return fail(ch, s, ResetReason::output_full, false);
    s.client_ended = true;
  }
  if (s.ciphertext_ended) finish(ch, s);
}

void TlsWorker::on_backend_end(Channel& ch, Session& s) {
  if (!s.handshake_done) return fail(ch, s, ResetReason::bad_record, false);
  if (!s.ciphertext_ended) {
    SSL_shutdown(s.ssl);  // queues close_notify
    ERR_clear_error();
    if (!flush_ciphertext(ch, s) || !ch.out.try_write(s.id, kind_of(Kind::ciphertext_end), {}))
      return fail(ch, s, ResetReason::output_full, false);
    s.ciphertext_ended = true;
  }
  if (s.client_ended) finish(ch, s);
}

bool TlsWorker::drive(Channel& ch, Session& s) {
  if (!s.handshake_done) {
    ERR_clear_error();
    const int r = SSL_do_handshake(s.ssl);
    if (r != 1) {
      const int e = SSL_get_error(s.ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (flush_ciphertext(ch, s)) return true;
        fail(ch, s, ResetReason::output_full, false);
        return false;
      }
      fail(ch, s, classify(true), true);
      return false;
    }
    s.handshake_done = true;
    if (s.has_deadline) deadlines_.erase(s.deadline);
    s.has_deadline = false;
    tls_channel::HandshakeDone done;
    done.version = static_cast<uint16_t>(SSL_version(s.ssl));
    done.resumed = SSL_session_reused(s.ssl) == 1;
    if (s.choice.sni_pool >= 0) done.sni_pool = static_cast<uint16_t>(s.choice.sni_pool);
    if (const char* name = SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name))
      done.server_name = name;
    (done.version == TLS1_3_VERSION ? counters_.handshakes_tls13 : counters_.handshakes_tls12)++;
    if (done.resumed) ++counters_.handshakes_resumed;
    if (!ch.out.try_write(s.id, kind_of(Kind::handshake_done), tls_channel::encode(done))) {
      fail(ch, s, ResetReason::output_full, false);
      return false;
    }
  }
  for (;;) {
    uint8_t* to = ch.out.reserve(s.id, kind_of(Kind::plaintext), tls_channel::kMaxRecordPayload);
    if (to == nullptr) {
      fail(ch, s, ResetReason::output_full, false);
      return false;
    }
    ERR_clear_error();
    const int n = SSL_read(s.ssl, to, static_cast<int>(tls_channel::kMaxRecordPayload));
    if (n > 0) {
      ch.out.commit(static_cast<uint32_t>(n));
      counters_.plaintext_out += static_cast<uint64_t>(n);
      continue;
    }
    const int e = SSL_get_error(s.ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {  // the client's close_notify: end the backend's stream
      if (!s.client_ended && !ch.out.try_write(s.id, kind_of(Kind::plaintext_end), {})) {
        fail(ch, s, ResetReason::output_full, false);
        return false;
      }
      s.client_ended = true;
      break;
    }
    fail(ch, s, classify(false), true);
    return false;
  }
  if (!flush_ciphertext(ch, s)) {
    fail(ch, s, ResetReason::output_full, false);
    return false;
  }
  if (s.client_ended && s.ciphertext_ended) finish(ch, s);
  return true;
}

bool TlsWorker::flush_ciphertext(Channel& ch, Session& s) {
  while (const size_t pending = BIO_ctrl_pending(s.wbio)) {
    const uint32_t n =
        static_cast<uint32_t>(std::min<size_t>(pending, tls_channel::kMaxRecordPayload));
    uint8_t* to = ch.out.reserve(s.id, kind_of(Kind::ciphertext), n);
    if (to == nullptr) return false;
    BIO_read(s.wbio, to, static_cast<int>(n));
    ch.out.commit();
    counters_.ciphertext_out += n;
  }
  return true;
}

void TlsWorker::fail(Channel& ch, Session& s, ResetReason reason, bool send_alert) {
  if (send_alert) flush_ciphertext(ch, s);  // the alert OpenSSL queued, if the ring takes it
  ERR_clear_error();
  ++counters_.resets[static_cast<size_t>(reason)];
  const uint64_t id = s.id;
  finish(ch, s);
  if (!ch.out.try_write(id, kind_of(Kind::reset),
                        std::span(reinterpret_cast<const uint8_t*>(&reason), sizeof reason)))
    ch.unsent_resets.emplace_back(id, reason);
}

void TlsWorker::finish(Channel& ch, Session& s) {
  if (s.has_deadline) deadlines_.erase(s.deadline);
  SSL_free(s.ssl);
  ch.sessions.erase(s.id);  // destroys s
}

void TlsWorker::reset_unknown(Channel& ch, uint64_t id, ResetReason reason) {
  ++counters_.resets[static_cast<size_t>(reason)];
  if (!ch.out.try_write(id, kind_of(Kind::reset),
                        std::span(reinterpret_cast<const uint8_t*>(&reason), sizeof reason)))
    ch.unsent_resets.emplace_back(id, reason);
}

void TlsWorker::drop_channel(Channel& ch) {
  while (!ch.sessions.empty()) finish(ch, *ch.sessions.begin()->second);
  ch.broken = true;
  ++counters_.channels_broken;
}

}  // namespace weir::tls
