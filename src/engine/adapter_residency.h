// AdapterResidency: what the Scheduler needs from the adapter cache, as a small interface so
// the scheduler is tested with a fake (no model, no files, no threads).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model/adapter_layout.h"

namespace ls {

class AdapterResidency {
 public:
  virtual ~AdapterResidency() = default;
  virtual bool known(const std::string& name) const = 0;
  // On the device with its weights copied: requests for it can run.
  virtual bool resident(const std::string& name) const = 0;
  // Starts bringing `name` to the device (disk -> host -> pages); no-op when on its way.
  virtual void request(const std::string& name) = 0;
  // Counts one new request for `name` against the tier it is in now (hit/miss statistics).
  virtual void note_request(const std::string& name) { (void)name; }
  // Pins a resident adapter for a running request (never evicted while pinned).
  virtual const ResidentAdapter* pin(const std::string& name) = 0;
  virtual void unpin(const std::string& name) = 0;
  // Frees the pages of the least recently used unpinned resident adapter; false when none.
  virtual bool evict_one() = 0;
  // Adapters whose load failed since the last call, with the reason.
  virtual std::vector<std::pair<std::string, std::string>> take_failures() = 0;
};

}  // namespace ls
