#include "base/signals.h"

#include <memory>
#include <mutex>

namespace etcdsafe {
namespace {
std::mutex& ForwarderMutex() {
  static std::mutex* m = new std::mutex;  // never destroyed: used by the signal thread until _exit
  return *m;
}
std::shared_ptr<std::function<void(int)>>& Forwarder() {
  static auto* f = new std::shared_ptr<std::function<void(int)>>;
  return *f;
}
}  // namespace

void SetSignalForwarder(std::function<void(int sig)> fn) {
  std::lock_guard<std::mutex> l(ForwarderMutex());
  Forwarder() = fn ? std::make_shared<std::function<void(int)>>(std::move(fn)) : nullptr;
}

bool ForwardSignal(int sig) {
  std::shared_ptr<std::function<void(int)>> f;
  {
    std::lock_guard<std::mutex> l(ForwarderMutex());
    f = Forwarder();
  }
  if (!f) return false;
  (*f)(sig);
  return true;
}

}  // namespace etcdsafe
