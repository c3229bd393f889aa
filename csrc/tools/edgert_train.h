// edgert_train.h — `edgert train` (edgert_train.cpp): argv after the command word.
#pragma once

namespace edge {

// Runs the command; returns the process exit code (0 ok, 1 the command failed, 2 bad usage).
int edgert_train(int argc, char** argv);

}  // namespace edge
