"""tensorflowjs_converter, run by the converter venv's own Python (it imports nothing of frameduel's).

tensorflowjs 4.22.0 imports tensorflow_decision_forests at the top of its SavedModel converter, for
SavedModels that hold decision-forest ops. frameduel's SavedModels hold none, and TF-DF 1.12.0
(the release for TF 2.19) aborts the process when it loads: its two op libraries register the same
yggdrasil protos twice ("File already exists in database: .../weight.proto", a protobuf CHECK
failure) with tensorflow-cpu 2.19.0 and protobuf 6.31.1. So TF-DF is not installed, and its name is
bound to an empty module before the converter loads; a SavedModel that did need its ops would fail
to convert, with that op named in the error.
"""

import sys
import types

sys.modules["tensorflow_decision_forests"] = types.ModuleType("tensorflow_decision_forests")

from tensorflowjs.converters.converter import pip_main  # noqa: E402 - after the module above is bound

if __name__ == "__main__":
    sys.exit(pip_main())
