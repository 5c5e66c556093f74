/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, which grpcurl and
 * older tools still ask for), answered from the protobuf-es descriptors of
 * the services we serve: list services, file by name, file containing a
 * symbol. Files are sent with their transitive dependencies.
 */
import {
  create,
  createRegistry,
  type DescFile,
  type DescService,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../proto/gen/grpc/reflection/v1alpha/reflection_pb.ts";

type Answer = MessageInitShape<typeof v1.ServerReflectionResponseSchema>["messageResponse"];

export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  const files = new Map<string, DescFile>();
  const addFile = (f: DescFile) => {
    if (files.has(f.name)) return;
    files.set(f.name, f);
    for (const d of f.dependencies) addFile(d);
  };
  for (const s of all) addFile(s.file);
  const registry = createRegistry(...files.values());
  const encoded = new Map<string, Uint8Array>();
  const encode = (f: DescFile) => {
    let bytes = encoded.get(f.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, f.proto);
      encoded.set(f.name, bytes);
    }
    return bytes;
  };
  const withDeps = (f: DescFile): Uint8Array[] => {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const walk = (x: DescFile) => {
      if (seen.has(x.name)) return;
      seen.add(x.name);
      out.push(encode(x));
      for (const d of x.dependencies) walk(d);
    };
    walk(f);
    return out;
  };
  const notFound = (what: string): Answer => ({
    case: "errorResponse",
    value: { errorCode: 5, errorMessage: `${what} not found` },
  });

  const answer = (req: v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest): Answer => {
    const q = req.messageRequest;
    switch (q.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: all.map((s) => ({ name: s.typeName })) },
        };
      case "fileByFilename": {
        const f = files.get(q.value);
        return f
          ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDeps(f) } }
          : notFound(`file "${q.value}"`);
      }
      case "fileContainingSymbol": {
        const name = q.value.replace(/^\./, "");
        let desc = registry.get(name);
        if (!desc) {
          // A method name: "pkg.Service.Method".
          const dot = name.lastIndexOf(".");
          const parent = registry.get(name.slice(0, dot));
          if (
            parent?.kind === "service" &&
            parent.methods.some((m) => m.name === name.slice(dot + 1))
          ) {
            desc = parent;
          }
        }
        if (!desc || desc.kind === "extension") {
          return desc?.kind === "extension"
            ? {
                case: "fileDescriptorResponse",
                value: { fileDescriptorProto: withDeps(desc.file) },
              }
            : notFound(`symbol "${name}"`);
        }
        return {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: withDeps(desc.file) },
        };
      }
      case "fileContainingExtension":
      case "allExtensionNumbersOfType":
        return {
          case: "errorResponse",
          value: { errorCode: 12, errorMessage: "extension lookups are not supported" },
        };
      default:
        return {
          case: "errorResponse",
          value: { errorCode: 3, errorMessage: "empty reflection request" },
        };
    }
  };

  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(reqs) {
      for await (const req of reqs) {
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req),
        });
      }
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(reqs) {
      for await (const req of reqs) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req) as MessageInitShape<
            typeof v1alpha.ServerReflectionResponseSchema
          >["messageResponse"],
        });
      }
    },
  });
}
