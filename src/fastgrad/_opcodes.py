"""The opcodes of ``fastgrad.compile``'s programs: one list, defined here and nowhere else.

Elementwise opcodes come first (an instruction computes out (+)= α f(a, b, c) over an
R × C space), then ``EW_END``, then the dense ones. Each name becomes a module constant
(its position); the build writes the same list into the C header the executor uses.
"""

ELEMENTWISE = (
    "COPY", "ADD", "SUB", "MUL", "DIV", "NEG", "EXP", "LOG", "SIN", "COS", "TANH", "SIGMOID",
    "RELU", "SQRT", "POW", "RELU_BWD", "SIGMOID_BWD", "TANH_BWD", "POW_BWD", "POW_BWD_B",
    "SIN_BWD", "COS_BWD", "DIV_BWD_B", "SQRT_BWD", "MAX", "MIN", "MAX_BWD", "MIN_BWD", "WHERE",
)
DENSE = (
    "CAST", "AFFINE", "GEMM", "TRANSPOSE", "SGD", "ADAM", "LOGSOFTMAX", "LOGSOFTMAX_BWD",
    "SOFTMAX", "SOFTMAX_BWD", "FUSED", "SCE", "SCE_BWD",
)
EW_END = len(ELEMENTWISE)
OPCODES = ELEMENTWISE + ("EW_END",) + DENSE  # position = opcode number
NAMES = {i: name for i, name in enumerate(OPCODES) if name != "EW_END"}

globals().update({name: i for i, name in enumerate(OPCODES)})
