// ToolSettings: the `tools` fragment of GatewayConfig (NEUROAGENT_TOOLS__<ID>__*), one object per
// tool route of the task registry: how long the route waits, and the cap on its input's large field
// where the task definition names one. Imports only TypeBox and the task registry.
import { TOOL_TASKS, type ToolRoute } from '@neuroagent/contracts';
import { type TInteger, type TObject, Type } from '@sinclair/typebox';

function settingsOf(tool: ToolRoute) {
  const props: Record<string, TInteger> = {
    timeout_s: Type.Integer({
      default: tool.defaultWaitS,
      minimum: 0,
      description: `POST ${tool.path} waits this long for the result, then answers 202`,
    }),
  };
  const limit = tool.maxFieldSize;
  if (limit) {
    props[limit.setting] = Type.Integer({
      default: limit.defaultKb,
      minimum: 1,
      description: `Largest ${limit.field} accepted, in KiB; a larger one gets 413 ${limit.code}`,
    });
  }
  return Type.Object(props);
}

/** Each tool's settings: `timeout_s` always, plus its field-size setting where it has one. */
type OneTool = TObject<{ timeout_s: TInteger } & { [setting: string]: TInteger }>;

export const ToolSettings = Type.Object(
  Object.fromEntries(TOOL_TASKS.map((t) => [t.tool.id, settingsOf(t.tool)])) as Record<string, OneTool>,
);
