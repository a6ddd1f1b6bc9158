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

#include "saved_model.h"
#include "tensorflow_serving/apis/predict.pb.h"

namespace {

using grpc::ByteBuffer;
using grpc::Status;
using serving_native::SavedModel;
using tensorflow::TensorProto;
using tensorflow::serving::PredictRequest;
using tensorflow::serving::PredictResponse;
using Clock = std::chrono::steady_clock;

constexpr char kPredict[] = "/tensorflow.serving.PredictionService/Predict";

struct Options {
  std::string host = "127.0.0.1";
  int port = 8500;
  std::string backend;
  std::string tensorflow_library;  // empty: every batch goes to the backend
  int max_batch_size = 32;
  int num_batch_threads = 1;
  int batch_timeout_micros = 1000;
  int max_message_bytes = 64 << 20;
};

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

// The values of a tensor live in tensor_content or in one typed repeated field.
const google::protobuf::FieldDescriptor* ValueField(const TensorProto& t, int* fields_used) {
  const auto* descriptor = t.GetDescriptor();
  const auto* reflection = t.GetReflection();
  const google::protobuf::FieldDescriptor* found = nullptr;
  *fields_used = t.tensor_content().empty() ? 0 : 1;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    if (field->is_repeated() && reflection->FieldSize(t, field) > 0) {
      found = field;
      ++*fields_used;
    }
  }
  return found;
}

int64_t Elements(const TensorProto& t, int from_dim) {
  int64_t n = 1;
  for (int i = from_dim; i < t.tensor_shape().dim_size(); ++i) n *= t.tensor_shape().dim(i).size();
  return n;
}

// Rows (dimension 0) of a request whose inputs can be stacked with others';
// `key` then names what must match for two requests to share a batch.
// Returns 0 when the request is to be relayed as it is.
int64_t BatchKey(const PredictRequest& request, std::string* key) {
  const auto& spec = request.model_spec();
  *key = spec.name() + '\n' + (spec.has_version() ? std::to_string(spec.version().value()) : "") + '\n' +
         spec.version_label() + '\n' + spec.signature_name() + '\n';
  std::vector<std::string> names;
  for (const auto& input : request.inputs()) names.push_back(input.first);
  std::sort(names.begin(), names.end());
  int64_t rows = -1;
  for (const std::string& name : names) {
    const TensorProto& t = request.inputs().at(name);
    const auto& shape = t.tensor_shape();
    if (shape.unknown_rank() || shape.dim_size() == 0 || shape.dim(0).size() < 1) return 0;
    if (rows != -1 && shape.dim(0).size() != rows) return 0;
    rows = shape.dim(0).size();
    for (const auto& dim : shape.dim()) {
      if (dim.size() < 0) return 0;
    }
    int fields_used;
    const auto* field = ValueField(t, &fields_used);
    const int64_t per_row = Elements(t, 1);
    std::string layout;
    if (fields_used != 1) return 0;  // no values, or an ambiguous mix
    if (field == nullptr) {           // tensor_content
      if (t.tensor_content().size() % rows != 0) return 0;
      layout = "content:" + std::to_string(t.tensor_content().size() / rows);
    } else {                          // one value per element, no broadcasting
      if (t.GetReflection()->FieldSize(t, field) != rows * per_row) return 0;
      layout = field->name();
    }
    *key += name + ':' + std::to_string(t.dtype()) + ':' + layout;
    for (int i = 1; i < shape.dim_size(); ++i) *key += ',' + std::to_string(shape.dim(i).size());
    *key += '\n';
  }
  std::vector<std::string> filter(request.output_filter().begin(), request.output_filter().end());
  std::sort(filter.begin(), filter.end());
  for (const std::string& f : filter) *key += "out:" + f + '\n';
  return rows;
}

// Stacks requests that share a BatchKey along dimension 0.
PredictRequest Merge(const std::vector<const PredictRequest*>& parts, int64_t rows) {
  PredictRequest merged;
  *merged.mutable_model_spec() = parts[0]->model_spec();
  *merged.mutable_output_filter() = parts[0]->output_filter();
  for (const auto& input : parts[0]->inputs()) {
    TensorProto& t = (*merged.mutable_inputs())[input.first];
    t = input.second;
    std::string content = t.tensor_content();
    for (size_t i = 1; i < parts.size(); ++i) {
      TensorProto values = parts[i]->inputs().at(input.first);
      content += values.tensor_content();
      values.clear_tensor_content();
      values.clear_tensor_shape();
      t.MergeFrom(values);  // appends the repeated value fields
    }
    t.set_tensor_content(content);
    t.mutable_tensor_shape()->mutable_dim(0)->set_size(rows);
  }
  return merged;
}

// Rows [from, from + count) of a tensor whose dimension 0 is `total`.
bool SliceRows(const TensorProto& t, int64_t total, int64_t from, int64_t count, TensorProto* out) {
  const auto& shape = t.tensor_shape();
  if (shape.unknown_rank() || shape.dim_size() == 0 || shape.dim(0).size() != total) return false;
  out->set_dtype(t.dtype());
  *out->mutable_tensor_shape() = shape;
  out->mutable_tensor_shape()->mutable_dim(0)->set_size(count);
  int fields_used;
  const auto* field = ValueField(t, &fields_used);
  if (fields_used == 0) return Elements(t, 0) == 0;
  if (fields_used != 1) return false;
  if (field == nullptr) {
    const std::string& content = t.tensor_content();
    if (content.size() % total != 0) return false;
    const size_t row = content.size() / total;
    out->set_tensor_content(content.substr(from * row, count * row));
    return true;
  }
  const auto* reflection = t.GetReflection();
  const int size = reflection->FieldSize(t, field);
  if (size % total != 0) return false;
  const int64_t per_row = size / total;
  for (int64_t i = from * per_row; i < (from + count) * per_row; ++i) {
    switch (field->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_FLOAT:
        reflection->AddFloat(out, field, reflection->GetRepeatedFloat(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->AddDouble(out, field, reflection->GetRepeatedDouble(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
        reflection->AddInt32(out, field, reflection->GetRepeatedInt32(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
        reflection->AddInt64(out, field, reflection->GetRepeatedInt64(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT32:
        reflection->AddUInt32(out, field, reflection->GetRepeatedUInt32(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT64:
        reflection->AddUInt64(out, field, reflection->GetRepeatedUInt64(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_BOOL:
        reflection->AddBool(out, field, reflection->GetRepeatedBool(t, field, i));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
        reflection->AddString(out, field, reflection->GetRepeatedString(t, field, i));
        break;
      default:
        return false;  // complex, resource and variant values are not split
    }
  }
  return true;
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
  void Finished(bool) { delete this; }

  Front* front_;
  grpc::AsyncGenericService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_;
  ByteBuffer request_, response_;
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
};

// The versions the Python server announced, and those loaded here.
class Models {
 public:
  // The loaded version a request names (or the latest, if it names none);
  // null when the Python server is to answer it.
  std::shared_ptr<const SavedModel> Find(const tensorflow::serving::ModelSpec& spec, int64_t* version) {
    if (!spec.version_label().empty()) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    const auto model = models_.find(spec.name());
    if (model == models_.end()) return nullptr;
    const std::set<int64_t>& announced = model->second.announced;
    *version = spec.has_version() ? spec.version().value() : announced.empty() ? -1 : *announced.rbegin();
    const auto loaded = model->second.loaded.find(*version);
    return loaded == model->second.loaded.end() ? nullptr : loaded->second;
  }

  // Python serves `version` from now on (the latest is the highest); it runs here once loaded.
  void Announce(const std::string& name, int64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    models_[name].announced.insert(version);
  }

  void Loaded(const std::string& name, int64_t version, std::shared_ptr<const SavedModel> model) {
    std::lock_guard<std::mutex> lock(mu_);
    models_[name].loaded[version] = std::move(model);
  }

  // Batches already running keep their version until they finish.
  void Unload(const std::string& name, int64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    Model& model = models_[name];
    model.loaded.erase(version);
    model.announced.erase(version);
  }

 private:
  struct Model {
    std::set<int64_t> announced;
    std::map<int64_t, std::shared_ptr<const SavedModel>> loaded;
  };
  std::mutex mu_;
  std::map<std::string, Model> models_;
};

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
  Front(const Options& options, std::shared_ptr<grpc::Channel> backend, Models* models)
      : options_(options),
        backend_(std::move(backend)),
        models_(models),
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

  void Handle(Call* call) {
    if (call->context()->method() != kPredict) return Relay(call, [] {});
    auto* pending = new Pending{call, PredictRequest(), 0, Clock::now()};
    if (!Parse(*call->request(), &pending->request)) {
      delete pending;
      return Relay(call, [] {});
    }
    std::string key;
    pending->rows = BatchKey(pending->request, &key);
    if (pending->rows > 0 && pending->rows < options_.max_batch_size) {
      std::lock_guard<std::mutex> lock(mu_);
      Queue& queue = queues_[key];
      if (!queue.unsplittable) {
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
      --queues_[key].running;
      queues_[key].expected += answered;
    }
    Dispatch(key);
  }

  // Runs Dispatch for keys whose oldest request has waited its time.
  void Timers() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (timers_.empty()) {
        timer_cv_.wait(lock);
        continue;
      }
      const auto next = timers_.begin()->first;
      if (Clock::now() < next) {
        timer_cv_.wait_until(lock, next);
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
      p->call->Reply(Status::OK);
      delete p;
    }
    Finished(key, static_cast<int>(batch.size()));
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
  grpc::GenericStub backend_;
  Models* models_;
  Workers workers_;
  std::mutex mu_;
  std::map<std::string, Queue> queues_;
  std::multimap<Clock::time_point, std::string> timers_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;
  std::thread timer_;  // last: starts once the rest is built
};

void Call::Read(bool ok) {
  if (!ok) return Reply(Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
  front_->Handle(this);
}

std::mutex stdout_mu;

// One line on stdout, for the Python server that reads them.
void Say(const std::vector<std::string>& fields) {
  std::string line;
  for (const std::string& f : fields) {
    std::string one = f;
    std::replace_if(one.begin(), one.end(), [](char c) { return c == '\t' || c == '\n'; }, ' ');
    line += (line.empty() ? "" : "\t") + one;
  }
  std::lock_guard<std::mutex> lock(stdout_mu);
  printf("%s\n", line.c_str());
  fflush(stdout);
}

// `line` cut at each `separator` (a control line's fields: tabs).
std::vector<std::string> Fields(const std::string& line, char separator = '\t') {
  std::vector<std::string> fields;
  size_t from = 0;
  for (size_t at; (at = line.find(separator, from)) != std::string::npos; from = at + 1) {
    fields.push_back(line.substr(from, at - from));
  }
  fields.push_back(line.substr(from));
  return fields;
}

// Reads the Python server's control lines (see the top of this file) until stdin closes.
void Control(Models* models, const std::string& library) {
  std::unique_ptr<serving_native::TensorFlow> tf;
  std::string tf_error = "no --tensorflow_library given";
  if (!library.empty()) tf_error.clear();
  std::string line;
  while (std::getline(std::cin, line)) {
    const std::vector<std::string> f = Fields(line);
    if (f[0] == "unload" && f.size() == 3) {
      models->Unload(f[1], strtoll(f[2].c_str(), nullptr, 10));
      continue;
    }
    if (f[0] != "load" || f.size() != 4) {
      fprintf(stderr, "serving_front: ignoring control line '%s'\n", line.c_str());
      continue;
    }
    const int64_t version = strtoll(f[2].c_str(), nullptr, 10);
    std::map<std::string, serving_native::Signature> signatures;
    while (std::getline(std::cin, line) && line != "end") {
      const std::vector<std::string> t = Fields(line);
      if (t.size() == 6 && (t[0] == "input" || t[0] == "output")) {
        auto& into = t[0] == "input" ? signatures[t[1]].inputs : signatures[t[1]].outputs;
        serving_native::TensorSpec spec{t[2], t[3], atoi(t[4].c_str()), t[5] != "?", {}};
        if (spec.known_rank && !t[5].empty()) {
          for (const std::string& dim : Fields(t[5], ',')) spec.shape.push_back(strtoll(dim.c_str(), nullptr, 10));
        }
        into.push_back(spec);
      }
    }
    models->Announce(f[1], version);
    if (!tf && tf_error.empty()) tf = serving_native::TensorFlow::Load(library, &tf_error);
    std::string error = tf ? "" : "TensorFlow's C API is not available: " + tf_error;
    std::shared_ptr<const SavedModel> model = tf ? SavedModel::Load(*tf, f[3], signatures, &error) : nullptr;
    if (model) models->Loaded(f[1], version, model);
    Say({model ? "loaded" : "failed", f[1], f[2], error});
  }
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      fprintf(stderr, "serving_front: %s needs a value\n", arg.c_str());
      exit(2);
    }
    char* end = nullptr;
    const long number = strtol(value.c_str(), &end, 10);
    const bool is_number = !value.empty() && *end == '\0';
    auto need_number = [&](int* field, long low) {
      if (!is_number || number < low) {
        fprintf(stderr, "serving_front: %s must be an integer >= %ld, got '%s'\n", arg.c_str(), low, value.c_str());
        exit(2);
      }
      *field = static_cast<int>(number);
    };
    if (arg == "--host") {
      o.host = value;
    } else if (arg == "--port") {
      need_number(&o.port, 0);
    } else if (arg == "--backend") {
      o.backend = value;
    } else if (arg == "--tensorflow_library") {
      o.tensorflow_library = value;
    } else if (arg == "--max_batch_size") {
      need_number(&o.max_batch_size, 1);
    } else if (arg == "--num_batch_threads") {
      need_number(&o.num_batch_threads, 1);
    } else if (arg == "--batch_timeout_micros") {
      need_number(&o.batch_timeout_micros, 0);
    } else if (arg == "--max_message_bytes") {
      need_number(&o.max_message_bytes, 1);
    } else {
      fprintf(stderr, "serving_front: unknown flag %s\n", arg.c_str());
      exit(2);
    }
  }
  if (o.backend.empty()) {
    fprintf(stderr, "serving_front: --backend (the Python server's gRPC address) is required\n");
    exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseFlags(argc, argv);
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
  Front front(options, grpc::CreateCustomChannel(options.backend, grpc::InsecureChannelCredentials(), channel_args),
              &models);

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
  std::thread(Control, &models, options.tensorflow_library).detach();
  int received;
  sigwait(&signals, &received);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  // No destructors from here: the control thread may be inside TensorFlow,
  // whose static state does not tear down cleanly.
  fflush(stdout);
  _exit(0);
}
