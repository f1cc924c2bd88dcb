"""Loop IR and scalar formulas to LLVM IR: values, vectors, math."""
