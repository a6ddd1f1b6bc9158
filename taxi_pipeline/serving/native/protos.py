"""Writes the TF Serving API's proto descriptors for the native front's build.

The `.proto` sources are not shipped on PyPI, but the installed
`tensorflow-serving-api` package carries their compiled descriptors: this
dumps them (with every import) as one FileDescriptorSet for `protoc
--descriptor_set_in`, so the C++ code is generated from exactly the API the
Python server and client speak. Prints the files to generate, one per line.

    python -m taxi_pipeline.serving.native.protos OUT.pb
"""

from __future__ import annotations

import sys

from google.protobuf import descriptor_pb2


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """prediction_service.proto and its imports, imports first."""
    from tensorflow_serving.apis import prediction_service_pb2

    ordered, seen = [], set()

    def visit(file) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        ordered.append(proto)

    visit(prediction_service_pb2.DESCRIPTOR)
    return descriptor_pb2.FileDescriptorSet(file=ordered)


def main(argv=None) -> None:
    out = (argv or sys.argv[1:])[0]
    files = descriptor_set()
    with open(out, "wb") as f:
        f.write(files.SerializeToString())
    # google/protobuf/* come with libprotobuf; generate the rest.
    print("\n".join(p.name for p in files.file if not p.name.startswith("google/protobuf/")))


if __name__ == "__main__":
    main()
