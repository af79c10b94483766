// Reads a JSON array of KEDA resources on stdin; prints what KEDA's CRD schema rejects.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const kinds = { ScaledObject };
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let failed = 0;
for (const doc of JSON.parse(Buffer.concat(chunks).toString())) {
  const Kind = kinds[doc.kind];
  if (!Kind) {
    console.log(`${doc.kind}: no schema here`);
    failed += 1;
    continue;
  }
  try {
    new Kind(doc).validate();
  } catch (error) {
    console.log(`${doc.kind}/${doc.metadata?.name}: ${error.message}`);
    failed += 1;
  }
}
process.exit(failed ? 1 : 0);
