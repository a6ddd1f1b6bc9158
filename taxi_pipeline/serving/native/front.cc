// serving_front: TF Serving's gRPC API on a public port, in front of the
// Python model server, batching concurrent Predict calls and running them.
//
// Python spends about a millisecond of CPU on every gRPC call and every model
// call, so a Python server answering many small requests is busy with itself,
// not with the model. This front takes the calls in C++ and merges concurrent
// Predict requests for the same model, version, signature and input shapes
// into one batch, then splits the outputs back along the batch dimension, as
// tensorflow_model_server --enable_batching does.
//
// A batch runs here, in TensorFlow's C API (saved_model.h), when the Python
// server has announced its model version on stdin and the version loaded;
// otherwise it goes to the Python server as one call. Everything else (other
// methods, requests that do not fit a signature exactly, batches TensorFlow
// refuses) is relayed to the Python server byte for byte, so it stays the one
// place that decides versions and words errors.
//
// A batch (at most --max_batch_size rows) leaves when one of
// --num_batch_threads slots for its key is free and it is full, or holds
// every caller the front expects back (those it just answered: a closed loop
// of 16 clients sends batches of 16, a lone caller never waits), or its
// oldest request has waited --batch_timeout_micros.
//
//   serving_front --port 8500 --backend unix:/tmp/backend.sock
//       [--tensorflow_library .../tensorflow/libtensorflow_cc.so.2]
//
// Control lines on stdin (tab-separated; answered on stdout with
// "loaded|failed NAME VERSION [REASON]"):
//   load NAME VERSION EXPORT_DIR        a version Python now serves (the highest is the latest),
//   input|output SIGNATURE ALIAS TENSOR DTYPE SHAPE   one line per tensor; SHAPE
//                                       is dims joined by "," (-1: any size), "?" for any rank,
//   end
//   unload NAME VERSION                 a version Python no longer serves.

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "batching.h"
#include "control.h"
#include "flags.h"
#include "saved_model.h"
#include "tensorflow_serving/apis/predict.pb.h"

namespace {

using grpc::ByteBuffer;
using grpc::Status;
using serving_native::Models;
using serving_native::Options;
using serving_native::SavedModel;
using serving_native::Say;
using serving_native::Tallies;
using serving_native::BatchKey;
using serving_native::CarriesItsElements;
using serving_native::Merge;
using serving_native::SliceRows;
using tensorflow::TensorProto;
using tensorflow::serving::PredictRequest;
using tensorflow::serving::PredictResponse;
using Clock = std::chrono::steady_clock;

constexpr char kPredict[] = "/tensorflow.serving.PredictionService/Predict";
// Metadata of a batch sent to Python as one call, whose callers the front counts (grpc_api.py).
constexpr char kFrontCounted[] = "x-serving-front-counted";


bool Parse(const ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return message->ParseFromString(bytes);
}

ByteBuffer Serialize(const google::protobuf::Message& message) {
  grpc::Slice slice(message.SerializeAsString());
  return ByteBuffer(&slice, 1);
}

class Front;

// One client call on a completion queue: wait for it, read its request, let
// the front answer it. Its events are handled by the thread polling its queue,
// with no hand-off to another thread.
class Call {
 public:
  Call(Front* front, grpc::AsyncGenericService* service, grpc::ServerCompletionQueue* cq)
      : front_(front), service_(service), cq_(cq), stream_(&context_) {
    service_->RequestCall(&context_, &stream_, cq_, cq_, &arrived_);
  }

  // What a completion queue hands back: the call and which of its steps completed.
  struct Event {
    Call* call;
    void (Call::*step)(bool ok);
    void Run(bool ok) { (call->*step)(ok); }
  };

  void Reply(const Status& status) {
    if (status.ok()) {
      stream_.WriteAndFinish(response_, grpc::WriteOptions(), status, &finished_);
    } else {
      stream_.Finish(status, &finished_);
    }
  }

  grpc::GenericServerContext* context() { return &context_; }
  ByteBuffer* request() { return &request_; }
  ByteBuffer* response() { return &response_; }

 private:
  void Arrived(bool ok) {
    if (!ok) {  // the server is shutting down
      delete this;
      return;
    }
    new Call(front_, service_, cq_);  // wait for the next one
    stream_.Read(&request_, &read_);
  }
  void Read(bool ok);
  void Finished(bool);

  Front* front_;
  grpc::AsyncGenericService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_;
  ByteBuffer request_, response_;
  bool admitted_ = false;  // counted in the front's calls in progress
  Event arrived_{this, &Call::Arrived}, read_{this, &Call::Read}, finished_{this, &Call::Finished};
};

struct Pending {
  Call* call;
  PredictRequest request;
  int64_t rows;
  Clock::time_point arrived;
};

// Requests of one batch key waiting for a free slot.
struct Queue {
  std::deque<Pending*> waiting;
  int64_t waiting_rows = 0;
  int running = 0;
  int expected = 0;           // callers answered and not yet heard from again
  bool timer_set = false;     // a wake-up for this key is in timers_
  bool unsplittable = false;  // its outputs do not split by row: relay alone
  Clock::time_point used;     // last request queued or batch finished
};

// The batch keys a front keeps (a key per model, version, signature and input
// shapes): beyond, requests of a new key run unbatched. A key idle for
// kQueueIdle is forgotten, so the state shrinks again when clients stop.
constexpr size_t kMaxQueues = 1024;
constexpr auto kQueueIdle = std::chrono::seconds(10);

// Threads that run batches, so that gRPC's own threads never wait on a model.
class Workers {
 public:
  explicit Workers(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void Run(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (stopping_) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class Front {
 public:
  Front(const Options& options, std::shared_ptr<grpc::Channel> backend, Models* models, Tallies* tallies)
      : options_(options),
        backend_(std::move(backend)),
        models_(models),
        tallies_(tallies),
        workers_(std::max<int>(options.num_batch_threads, std::thread::hardware_concurrency())),
        timer_([this] { Timers(); }) {}

  ~Front() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    timer_cv_.notify_one();
    timer_.join();
  }

  // Counts a call in (false, and not counted, beyond --max_concurrent_requests);
  // Done counts it out once answered.
  bool Admit() {
    if (in_flight_.fetch_add(1) < options_.max_concurrent_requests) return true;
    in_flight_.fetch_sub(1);
    return false;
  }
  void Done() { in_flight_.fetch_sub(1); }

  void Handle(Call* call) {
    if (call->context()->method() != kPredict) return Relay(call, [] {});
    auto* pending = new Pending{call, PredictRequest(), 0, Clock::now()};
    bool runnable = Parse(*call->request(), &pending->request);
    for (const auto& input : pending->request.inputs()) runnable = runnable && CarriesItsElements(input.second);
    if (!runnable) {  // Python words the error (or runs what the front does not)
      delete pending;
      return Relay(call, [] {});
    }
    std::string key;
    pending->rows = BatchKey(pending->request, &key);
    if (pending->rows > 0 && pending->rows < options_.max_batch_size) {
      std::lock_guard<std::mutex> lock(mu_);
      const bool known = queues_.count(key) > 0;
      Queue& queue = known || queues_.size() < kMaxQueues ? queues_[key] : overflow_;
      queue.used = Clock::now();
      if (&queue != &overflow_ && !queue.unsplittable) {
        queue.waiting.push_back(pending);
        queue.waiting_rows += pending->rows;
        if (queue.expected > 0) --queue.expected;
        pending = nullptr;
      }
    }
    if (pending != nullptr) return Send("", {pending}, pending->rows);  // not batched
    Dispatch(key);
  }

 private:
  // Sends the call's own bytes to the backend and answers with what it says.
  void Relay(Call* call, std::function<void()> then) {
    auto* context = new grpc::ClientContext;
    context->set_deadline(call->context()->raw_deadline());
    backend_.UnaryCall(context, call->context()->method(), grpc::StubOptions(), call->request(), call->response(),
                       [context, call, then](Status status) {
                         delete context;
                         call->Reply(status);
                         then();
                       });
  }

  // Starts batches of `key` while slots are free and batches are ready.
  void Dispatch(const std::string& key) {
    for (;;) {
      std::vector<Pending*> batch;
      int64_t rows = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        Queue& queue = queues_[key];
        if (queue.running >= options_.num_batch_threads || queue.waiting.empty()) return;
        const auto due = queue.waiting.front()->arrived + std::chrono::microseconds(options_.batch_timeout_micros);
        if (queue.waiting_rows < options_.max_batch_size && queue.expected > 0) {
          if (Clock::now() < due) {
            if (!queue.timer_set) {  // dispatch then at the latest
              queue.timer_set = true;
              timers_.emplace(due, key);
              timer_cv_.notify_one();
            }
            return;
          }
          queue.expected = 0;  // they did not come back in time
        }
        while (!queue.waiting.empty() && rows + queue.waiting.front()->rows <= options_.max_batch_size) {
          rows += queue.waiting.front()->rows;
          batch.push_back(queue.waiting.front());
          queue.waiting.pop_front();
        }
        queue.waiting_rows -= rows;
        ++queue.running;
      }
      Send(key, std::move(batch), rows);
    }
  }

  // `key` is empty for a request that is not batched.
  void Finished(const std::string& key, int answered) {
    if (key.empty()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Queue& queue = queues_[key];
      --queue.running;
      queue.expected += answered;
      queue.used = Clock::now();
    }
    Dispatch(key);
  }

  // Runs Dispatch for keys whose oldest request has waited its time.
  void Timers() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      ForgetIdleQueues();
      const auto next = timers_.empty() ? Clock::now() + std::chrono::seconds(1) : timers_.begin()->first;
      if (Clock::now() < next) {
        timer_cv_.wait_until(lock, std::min(next, Clock::now() + std::chrono::seconds(1)));
        continue;
      }
      std::vector<std::string> keys;
      while (!timers_.empty() && timers_.begin()->first <= Clock::now()) {
        keys.push_back(timers_.begin()->second);
        queues_[keys.back()].timer_set = false;
        timers_.erase(timers_.begin());
      }
      lock.unlock();
      for (const std::string& key : keys) Dispatch(key);
      lock.lock();
    }
  }

  // Drops the keys nobody has used for kQueueIdle (the caller holds mu_).
  void ForgetIdleQueues() {
    const auto now = Clock::now();
    if (now - last_sweep_ < std::chrono::seconds(1)) return;
    last_sweep_ = now;
    for (auto it = queues_.begin(); it != queues_.end();) {
      const Queue& queue = it->second;
      const bool idle = queue.waiting.empty() && queue.running == 0 && !queue.timer_set;
      it = idle && now - queue.used > kQueueIdle ? queues_.erase(it) : std::next(it);
    }
  }

  void Send(const std::string& key, std::vector<Pending*> batch, int64_t rows) {
    int64_t version = -1;
    if (std::shared_ptr<const SavedModel> model = models_->Find(batch[0]->request.model_spec(), &version)) {
      return workers_.Run([this, key, batch, rows, model, version] { Run(key, batch, rows, *model, version); });
    }
    if (batch.size() == 1) {
      Pending* only = batch[0];
      return Relay(only->call, [this, key, only] {
        delete only;
        Finished(key, 1);
      });
    }
    std::vector<const PredictRequest*> parts;
    for (Pending* p : batch) parts.push_back(&p->request);
    struct Batch {
      grpc::ClientContext context;
      ByteBuffer request, response;
    };
    auto* sent = new Batch;
    sent->request = Serialize(Merge(parts, rows));
    // The batch lives as long as its most patient caller.
    auto deadline = batch[0]->call->context()->raw_deadline();
    for (Pending* p : batch) {
      if (gpr_time_cmp(p->call->context()->raw_deadline(), deadline) > 0) deadline = p->call->context()->raw_deadline();
    }
    sent->context.set_deadline(deadline);
    sent->context.AddMetadata(kFrontCounted, "1");  // these callers are counted here, not by Python
    backend_.UnaryCall(&sent->context, kPredict, grpc::StubOptions(), &sent->request, &sent->response,
                       [this, key, sent, batch, rows](Status status) {
                         PredictResponse merged;
                         if (!status.ok() || !Parse(sent->response, &merged) || !Split(merged, batch, rows)) {
                           // One bad request must not fail the others; outputs that do not
                           // split by row mean this key is never batched again.
                           if (status.ok()) MarkUnsplittable(key);
                           for (Pending* p : batch) {
                             Relay(p->call, [p] { delete p; });
                           }
                         } else {
                           for (Pending* p : batch) {
                             Count(*p, merged.model_spec().version().value());
                             p->call->Reply(Status::OK);
                             delete p;
                           }
                         }
                         delete sent;
                         Finished(key, static_cast<int>(batch.size()));
                       });
  }

  // Runs a batch here; what fails is answered by the backend, request by request.
  void Run(const std::string& key, const std::vector<Pending*>& batch, int64_t rows, const SavedModel& model,
           int64_t version) {
    PredictRequest merged;
    if (batch.size() > 1) {
      std::vector<const PredictRequest*> parts;
      for (Pending* p : batch) parts.push_back(&p->request);
      merged = Merge(parts, rows);
    }
    const PredictRequest& request = batch.size() > 1 ? merged : batch[0]->request;
    PredictResponse response;
    const bool ran = model.Predict(request, &response);
    if (ran) {
      auto* spec = response.mutable_model_spec();
      spec->set_name(request.model_spec().name());
      spec->mutable_version()->set_value(version);
      spec->set_signature_name(request.model_spec().signature_name().empty() ? "serving_default"
                                                                             : request.model_spec().signature_name());
    }
    if (ran && batch.size() == 1) {
      *batch[0]->call->response() = Serialize(response);
    } else if (!ran || !Split(response, batch, rows)) {
      if (ran) MarkUnsplittable(key);
      for (Pending* p : batch) {
        Relay(p->call, [p] { delete p; });
      }
      return Finished(key, static_cast<int>(batch.size()));
    }
    for (Pending* p : batch) {
      Count(*p, version);
      p->call->Reply(Status::OK);
      delete p;
    }
    Finished(key, static_cast<int>(batch.size()));
  }

  // A request answered here (not relayed, which Python counts) in the tallies.
  void Count(const Pending& p, int64_t version) {
    const auto& spec = p.request.model_spec();
    const double micros = std::chrono::duration<double, std::micro>(Clock::now() - p.arrived).count();
    tallies_->Record(spec.name(), version, spec.signature_name().empty() ? "serving_default" : spec.signature_name(),
                     micros);
  }

  void MarkUnsplittable(const std::string& key) {
    if (key.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    queues_[key].unsplittable = true;
    fprintf(stderr, "serving_front: outputs of %s do not split by row; relaying its requests unbatched\n",
            key.substr(0, key.find('\n')).c_str());
  }

  // Fills each caller's response with its rows of the merged outputs.
  static bool Split(const PredictResponse& merged, const std::vector<Pending*>& batch, int64_t rows) {
    std::vector<PredictResponse> responses(batch.size());
    int64_t from = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      *responses[i].mutable_model_spec() = merged.model_spec();
      for (const auto& output : merged.outputs()) {
        if (!SliceRows(output.second, rows, from, batch[i]->rows, &(*responses[i].mutable_outputs())[output.first])) {
          return false;
        }
      }
      from += batch[i]->rows;
    }
    for (size_t i = 0; i < batch.size(); ++i) *batch[i]->call->response() = Serialize(responses[i]);
    return true;
  }

  Options options_;
  std::atomic<int> in_flight_{0};
  grpc::GenericStub backend_;
  Models* models_;
  Tallies* tallies_;
  Workers workers_;
  std::mutex mu_;
  std::map<std::string, Queue> queues_;
  Clock::time_point last_sweep_;
  Queue overflow_;  // stands in for a new key beyond kMaxQueues: never queued on
  std::multimap<Clock::time_point, std::string> timers_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;
  std::thread timer_;  // last: starts once the rest is built
};

void Call::Read(bool ok) {
  admitted_ = front_->Admit();
  if (!admitted_) {
    return Reply(Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "the server is at its limit of concurrent requests; retry later"));
  }
  if (!ok) return Reply(Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
  front_->Handle(this);
}

void Call::Finished(bool) {
  if (admitted_) front_->Done();
  delete this;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = serving_native::ParseFlags(argc, argv);
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the Python server that started us
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before gRPC starts its threads

  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(options.max_message_bytes);
  channel_args.SetMaxSendMessageSize(options.max_message_bytes);
  Models models;
  serving_native::Tallies tallies;
  Front front(options, grpc::CreateCustomChannel(options.backend, grpc::InsecureChannelCredentials(), channel_args),
              &models, &tallies);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.host + ":" + std::to_string(options.port), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port is an error, not shared
  grpc::AsyncGenericService service;
  builder.RegisterAsyncGenericService(&service);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  // Half the cores poll for calls, leaving the others to the batches (Workers):
  // on two cores, one thread does all the gRPC I/O without trading it back and forth.
  const int pollers = std::max(1u, std::thread::hardware_concurrency() / 2);
  for (int i = 0; i < pollers; ++i) queues.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    fprintf(stderr, "serving_front: cannot listen on %s:%d\n", options.host.c_str(), options.port);
    return 1;
  }
  for (auto& queue : queues) {
    for (int i = 0; i < 8; ++i) new Call(&front, &service, queue.get());  // calls waited for at once
    std::thread([cq = queue.get()] {
      void* event;
      bool ok;
      while (cq->Next(&event, &ok)) static_cast<Call::Event*>(event)->Run(ok);
    }).detach();
  }
  Say({"serving_front listening on port " + std::to_string(port)});
  std::thread(serving_native::Control, &models, &tallies, options.tensorflow_library).detach();
  int received;
  sigwait(&signals, &received);
  // No new calls from here; those in progress (queued, running, relayed) have
  // --shutdown_grace_seconds to be answered before they are cancelled.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(options.shutdown_grace_seconds));
  // No destructors from here: the control thread may be inside TensorFlow,
  // whose static state does not tear down cleanly.
  fflush(stdout);
  _exit(0);
}
