#include "common/service_notify.h"

#include <string>

#if WEIR_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace weir {

void notify_ready([[maybe_unused]] std::string_view status) {
#if WEIR_HAVE_LIBSYSTEMD
  // unset_environment 0: the daemons start no children that should notify in their place.
  sd_notify(0, ("READY=1\nSTATUS=" + std::string(status)).c_str());
#endif
}

void notify_stopping() {
#if WEIR_HAVE_LIBSYSTEMD
  sd_notify(0, "STOPPING=1");
#endif
}

}  // namespace weir
