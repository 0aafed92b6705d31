#include "server/round_driver.h"

#include <algorithm>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/log_tags.h"
#include "common/base/status_macros.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "glog/logging.h"

namespace ist {

RoundDriver::RoundDriver(std::string job_id, v1::JobSpec spec,
                         std::shared_ptr<const ModelFamily> family, int64_t total_rounds,
                         RoundDriverOptions options)
    : job_id_(std::move(job_id)),
      spec_(std::move(spec)),
      family_(std::move(family)),
      total_rounds_(total_rounds),
      options_(std::move(options)) {}

void RoundDriver::ResumeFrom(MlpParams<float> model, int64_t rounds_done,
                             std::vector<RoundShape> shapes) {
  model_ = std::move(model);
  has_model_ = true;
  rounds_done_ = rounds_done;
  round_shapes_ = std::move(shapes);
  slices_done_ = 0;
  for (const RoundShape& shape : round_shapes_) slices_done_ += shape.num_slices;
  EstimateTotalRounds();
}

void RoundDriver::set_slice_budget(int64_t slices) {
  slice_budget_ = slices;
  EstimateTotalRounds();
}

void RoundDriver::EstimateTotalRounds() {
  if (slice_budget_ <= 0 || round_shapes_.empty()) return;
  const int64_t s = std::max(1, round_shapes_.back().num_slices);
  const int64_t rest = std::max<int64_t>(0, slice_budget_ - slices_done_);
  total_rounds_ = rounds_done_ + (rest + s - 1) / s;
}

void RoundDriver::EnsureModel() {
  if (has_model_) return;
  model_ = family_->InitialModel();
  has_model_ = true;
}

void RoundDriver::DropModel() {
  model_ = MlpParams<float>();
  has_model_ = false;
}

absl::Status RoundDriver::OpenRound(const std::vector<std::pair<std::string, double>>& live) {
  const int live_workers = static_cast<int>(live.size());
  telemetry_.StartCycle(options_.now(), options_.process_cpu_seconds());
  const int S = SlicesFor(live_workers);
  std::vector<std::string> owners;
  const RoundShape wanted = ShapeFor(S, live, &owners);
  // The slices extracted with the last merge assumed that round's shape.
  const bool extracted = next_extracted_ && next_plan_.num_slices == S && wanted.shares.empty() &&
                         next_plan_.shape.shares.empty();
  next_extracted_ = false;
  if (extracted) {
    plan_ = std::move(next_plan_);
  } else {
    ASSIGN_OR_RETURN(plan_, family_->PlanRound(rounds_done_, wanted));
  }
  slots_.assign(S, Slot());  // drops the slots' references to last round's slices
  if (!extracted) {
    // Same shapes as last round: ExtractSlice overwrites in place.
    std::vector<MlpParams<float>*> outgoing = SpareOutgoing();
    for (int s = 0; s < S; ++s) family_->ExtractSlice(plan_, model_, s, outgoing[s]);
  }
  for (int s = 0; s < S; ++s) {
    Slot& slot = slots_[s];
    slot.shape = family_->SliceShape(plan_, s);
    slot.owner = s < static_cast<int>(owners.size()) ? owners[s] : "";
    slot.outgoing = spare_outgoing_[s];
  }
  telemetry_.PlanExtractDone(options_.now());
  slots_done_ = 0;
  failure_ = absl::OkStatus();
  round_open_ = true;
  telemetry_.RoundOpened(options_.now());
  return absl::OkStatus();
}

RoundShape RoundDriver::ShapeFor(int S, const std::vector<std::pair<std::string, double>>& live,
                                 std::vector<std::string>* owners) const {
  RoundShape shape;
  shape.num_slices = S;
  owners->clear();
  if (!spec_.speed_aware() || static_cast<int>(live.size()) < S) return shape;
  // The S fastest live workers (ties: lower id first), all measured.
  std::vector<std::pair<std::string, double>> chosen = live;
  std::stable_sort(chosen.begin(), chosen.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  chosen.resize(S);
  for (const auto& [id, throughput] : chosen) {
    if (!(throughput > 0)) return shape;
  }
  int narrowest = 0;
  for (int n : config().model.layer_sizes) narrowest = narrowest == 0 ? n : std::min(narrowest, n);
  shape.min_units = std::max(1, narrowest / (4 * S));
  for (const auto& [id, throughput] : chosen) {
    shape.shares.push_back(throughput);
    owners->push_back(id);
  }
  return shape;
}

int RoundDriver::SlicesFor(int live_workers) const {
  const int min = config().num_subnets;
  const int max = spec_.max_workers();
  return max > min ? std::clamp(live_workers, min, max) : min;
}

std::vector<MlpParams<float>*> RoundDriver::SpareOutgoing() {
  const int S = plan_.num_slices > 0 ? plan_.num_slices : config().num_subnets;
  spare_outgoing_.resize(S);
  std::vector<MlpParams<float>*> params;
  for (int s = 0; s < S; ++s) {
    // New references to a spare are only made in OpenRound and in Fetch,
    // both under the caller's lock, so use_count() == 1 means no handler
    // (and no gRPC send buffer) can be reading it.
    std::shared_ptr<OutgoingSlice>& outgoing = spare_outgoing_[s];
    if (outgoing == nullptr || outgoing.use_count() != 1) {
      outgoing = std::make_shared<OutgoingSlice>();
    }
    params.push_back(&outgoing->params);
  }
  return params;
}

std::optional<v1::Task> RoundDriver::HandOut(const std::string& worker_id) {
  if (!round_open_ || !failure_.ok()) return std::nullopt;
  // A slot sized for this worker first, then any slot sized for nobody.
  int chosen = -1;
  for (int s = 0; s < static_cast<int>(slots_.size()) && chosen < 0; ++s) {
    if (slots_[s].state == Slot::kPending && slots_[s].owner == worker_id) chosen = s;
  }
  for (int s = 0; s < static_cast<int>(slots_.size()) && chosen < 0; ++s) {
    if (slots_[s].state == Slot::kPending && slots_[s].owner.empty()) chosen = s;
  }
  if (chosen < 0) return std::nullopt;
  const int s = chosen;
  Slot& slot = slots_[s];
  slot.state = Slot::kAssigned;
  slot.worker = worker_id;
  ++slot.attempt;
  slot.deadline = options_.now() + options_.task_timeout;
  v1::Task task;
  v1::SliceTag* tag = task.mutable_tag();
  tag->set_job_id(job_id_);
  tag->set_round(rounds_done_);
  tag->set_subnet(s);
  tag->set_attempt(slot.attempt);
  *task.mutable_spec() = spec_;
  for (int n : slot.shape.layer_sizes) task.add_subnet_layers(n);
  task.set_first_step(rounds_done_ * config().local_steps);
  task.set_deadline_ms(absl::ToInt64Milliseconds(options_.task_timeout));
  RoundShapeToProto(plan_.shape, task.mutable_round_shape());
  return task;
}

bool RoundDriver::TakeBack(const std::string& worker_id, int subnet) {
  if (!round_open_ || subnet < 0 || subnet >= static_cast<int>(slots_.size())) return false;
  Slot& slot = slots_[subnet];
  if (slot.state != Slot::kAssigned || slot.worker != worker_id) return false;
  LOG(WARNING) << JobTag(job_id_, rounds_done_) << " subnet=" << subnet << ": worker "
               << worker_id << " abandoned it; reassigning";
  EndAttempt(subnet, absl::StrCat("worker ", worker_id, " abandoned it"));
  return true;
}

void RoundDriver::EndAttempt(int subnet, const std::string& why) {
  Slot& slot = slots_[subnet];
  slot.state = Slot::kPending;
  slot.owner.clear();  // taken back: any worker may have it
  slot.worker.clear();
  if (slot.attempt + 1 >= options_.max_attempts && failure_.ok()) {
    failure_ = absl::ResourceExhaustedError(absl::StrCat(
        "round ", rounds_done_, ", subnet ", subnet, ": no trained slice after ",
        slot.attempt + 1, " attempts (the limit, --max_attempts); the last: ", why));
    LOG(ERROR) << JobTag(job_id_, rounds_done_) << " " << failure_.message();
  }
}

absl::Status RoundDriver::ReportFailure(const std::string& worker_id, const v1::SliceTag& tag,
                                        const std::string& reason, bool deterministic) {
  RETURN_IF_ERROR(AwaitedSlot(worker_id, tag).status());
  const std::string why =
      absl::StrCat("worker ", worker_id, " failed attempt ", tag.attempt(), ": ", reason);
  LOG(WARNING) << JobTag(job_id_, rounds_done_) << " subnet=" << tag.subnet() << ": " << why;
  if (deterministic) {
    slots_[tag.subnet()].state = Slot::kPending;
    slots_[tag.subnet()].worker.clear();
    if (failure_.ok()) {
      failure_ = absl::AbortedError(
          absl::StrCat("round ", rounds_done_, ", subnet ", tag.subnet(), ": ", why));
    }
    return absl::OkStatus();
  }
  EndAttempt(tag.subnet(), why);
  return absl::OkStatus();
}

std::vector<std::string> RoundDriver::ReclaimExpired(
    const std::function<std::string(const std::string& worker_id, absl::Time now)>& why_lost) {
  std::vector<std::string> reclaimed;
  const absl::Time now = options_.now();
  for (int s = 0; s < static_cast<int>(slots_.size()); ++s) {
    Slot& slot = slots_[s];
    if (slot.state == Slot::kPending && !slot.owner.empty() && !why_lost(slot.owner, now).empty()) {
      slot.owner.clear();  // sized for a worker that is gone: any worker may have it
      continue;
    }
    if (slot.state != Slot::kAssigned) continue;
    std::string why = why_lost(slot.worker, now);
    if (why.empty() && now > slot.deadline) why = "missed the task deadline";
    if (why.empty()) continue;
    LOG(WARNING) << JobTag(job_id_, rounds_done_) << " subnet=" << s << ": worker "
                 << slot.worker << " " << why << "; subnet goes to the next worker that asks";
    reclaimed.push_back(slot.worker);
    EndAttempt(s, absl::StrCat("worker ", slot.worker, " ", why));
  }
  return reclaimed;
}

absl::StatusOr<const RoundDriver::Slot*> RoundDriver::AwaitedSlot(
    const std::string& worker_id, const v1::SliceTag& tag) const {
  if (!round_open_ || tag.round() != rounds_done_) {
    return absl::FailedPreconditionError(
        absl::StrCat("round ", tag.round(), " is not the open round ",
                     round_open_ ? absl::StrCat(rounds_done_) : "(none)"));
  }
  if (tag.subnet() < 0 || tag.subnet() >= static_cast<int>(slots_.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("subnet ", tag.subnet(), " does not exist"));
  }
  const Slot& slot = slots_[tag.subnet()];
  if (slot.state != Slot::kAssigned || slot.worker != worker_id ||
      slot.attempt != tag.attempt()) {
    return absl::FailedPreconditionError(
        absl::StrCat("attempt ", tag.attempt(), " by ", worker_id, " is not the one awaited (",
                     slot.state == Slot::kDone ? "already merged" : "reassigned", ")"));
  }
  return &slot;
}

absl::StatusOr<std::shared_ptr<const OutgoingSlice>> RoundDriver::Fetch(
    const std::string& worker_id, const v1::SliceTag& tag) const {
  ASSIGN_OR_RETURN(const Slot* slot, AwaitedSlot(worker_id, tag));
  return slot->outgoing;
}

absl::StatusOr<MlpConfig> RoundDriver::ExpectedShape(const std::string& worker_id,
                                                     const v1::SliceTag& tag) const {
  ASSIGN_OR_RETURN(const Slot* slot, AwaitedSlot(worker_id, tag));
  return slot->shape;
}

absl::Status RoundDriver::Accept(const std::string& worker_id, const v1::SliceTag& tag,
                                 const v1::TrainStats& stats, MlpParams<float> slice) {
  RETURN_IF_ERROR(AwaitedSlot(worker_id, tag).status());
  Slot& slot = slots_[tag.subnet()];
  slot.trained = std::move(slice);
  slot.mean_loss = stats.mean_loss();
  slot.state = Slot::kDone;
  slot.outgoing.reset();
  ++slots_done_;
  telemetry_.AddBytesReceived(slot.trained.NumScalars() * 4);
  return absl::OkStatus();
}

absl::Status RoundDriver::MergeRound(bool next_round_follows) {
  std::vector<const MlpParams<float>*> trained;
  double loss = 0;
  for (const Slot& slot : slots_) {
    trained.push_back(&slot.trained);
    loss += slot.mean_loss / slots_.size();
  }
  const absl::Time merge_start = options_.now();
  absl::Status merged;
  if (next_round_follows) {
    // Extract the next round's slices in the same pass as this merge (its
    // plan derives from the seed alone). merge_s then includes the next
    // round's extraction, and that round's plan_extract_s is ~0.
    for (Slot& slot : slots_) slot.outgoing.reset();
    RoundShape same_s;  // a guess: OpenRound re-plans if S changes
    same_s.num_slices = plan_.num_slices;
    absl::StatusOr<RoundPlan> next = family_->PlanRound(rounds_done_ + 1, same_s);
    merged = next.status();
    if (merged.ok()) {
      merged = family_->MergeThenExtractSlices(plan_, trained, *next, SpareOutgoing(), &model_);
    }
    if (merged.ok()) {
      next_plan_ = *std::move(next);
      next_extracted_ = true;
    }
  } else {
    merged = family_->MergeSlices(plan_, trained, &model_);
  }
  const double merge_seconds = absl::ToDoubleSeconds(options_.now() - merge_start);
  RETURN_IF_ERROR(merged);
  round_open_ = false;
  slots_.clear();
  // A fixed-S job's shapes are all the spec's: only elastic jobs record them.
  if (spec_.max_workers() > config().num_subnets) {
    round_shapes_.push_back(plan_.shape);
    slices_done_ += plan_.shape.num_slices;
  }
  ++rounds_done_;
  EstimateTotalRounds();
  last_round_loss_ = loss;
  telemetry_.RoundMerged(options_.now(), merge_seconds);
  return absl::OkStatus();
}

v1::JobProgress RoundDriver::MergedRoundProgress(const v1::JobProgress& progress) {
  v1::JobProgress p = progress;
  p.set_round(rounds_done_);
  p.set_total_rounds(total_rounds_);
  p.set_train_loss(last_round_loss_);
  RoundShapeToProto(plan_.shape, p.mutable_round_shape());  // for an exact replay
  telemetry_.AddToProgress(&p);
  const absl::Time fingerprint_start = options_.now();
  p.set_model_fingerprint(ParamsFingerprint(model_));
  telemetry_.FingerprintDone(fingerprint_start, options_.now());
  // The coordinator's own work in this round, everything but waiting for
  // workers: bench/coordinator_share.sh reads these lines.
  LOG(INFO) << telemetry_.OwnWorkLine(job_id_, rounds_done_, options_.process_cpu_seconds());
  return p;
}

void RoundDriver::AbandonRound() {
  round_open_ = false;
  failure_ = absl::OkStatus();
  slots_.clear();
}

void RoundDriver::Release() {
  AbandonRound();
  spare_outgoing_.clear();
  next_extracted_ = false;
}

absl::StatusOr<v1::EvaluateResponse> RoundDriver::EvaluateModel(const ModelFamily& family,
                                                                 const MlpParams<float>& model,
                                                                 const DenseDataset& data,
                                                                 int eval_batch) {
  ASSIGN_OR_RETURN(EvalResult eval, family.Evaluate(model, TrainingData::Dense(data), eval_batch));
  v1::EvaluateResponse response;
  response.set_accuracy(eval.accuracy);
  response.set_loss(eval.loss);
  response.set_samples(eval.samples);
  return response;
}

}  // namespace ist
