using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Evals;
using OpenAI.Files;
using OpenAI.FineTuning;

// The platform's API root and the team's key, from the README's steps (run from the repository's root).
var options = new OpenAIClientOptions { Endpoint = new Uri(Environment.GetEnvironmentVariable("FINETUNE_BASE_URL")!) };
var client = new OpenAIClient(new ApiKeyCredential(Environment.GetEnvironmentVariable("FINETUNE_API_KEY")!), options);

// Upload training data: validated line by line while it streams in; the file ends `processed` or `error`.
OpenAIFile file = await client.GetOpenAIFileClient().UploadFileAsync("examples/tickets.jsonl", FileUploadPurpose.FineTune);
Console.WriteLine($"uploaded {file.Filename} as {file.Id}");

// Fine-tune the built-in CPU model on it and wait: "auto" hyperparameters are resolved at creation and shown on the job.
#pragma warning disable OPENAI001 // the SDK marks its fine-tuning and evals clients experimental
FineTuningJob job = await client.GetFineTuningClient().FineTuneAsync(
    "local-nano", file.Id, waitUntilCompleted: true, new FineTuningOptions { Suffix = "tickets-sdk" });
string model = job.Value!; // ft:local-nano:proj_...:tickets-sdk:ftjob-...
Console.WriteLine($"job {job.JobId} {job.Status}: {model}");

// Chat with any model the project may use: the built-in presets (local-nano, local-small), its fine-tuned models
// and their checkpoints, models other teams granted it, and a configured upstream provider's models.
ChatClient chat = client.GetChatClient(model);
const string Instructions = "Route the support ticket to one team: billing, technical, shipping or account. Answer with the team only.";
ChatCompletion answer = await chat.CompleteChatAsync(
    [new SystemChatMessage(Instructions), new UserChatMessage("My parcel has not arrived yet")],
    new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 });
Console.WriteLine($"\"My parcel has not arrived yet\" -> {answer.Content[0].Text}");

// Evaluate it (OpenAI's Evals API; the SDK's EvaluationClient takes and returns JSON): an eval says what items look
// like and how to grade them (examples/ticket-eval.json); a run samples a model on every item and grades its answers.
EvaluationClient evals = client.GetEvaluationClient();
JsonNode eval = Json(await evals.CreateEvaluationAsync(BinaryContent.Create(BinaryData.FromString(File.ReadAllText("examples/ticket-eval.json")))));
string evalId = eval["id"]!.GetValue<string>();
Console.WriteLine($"eval {evalId}: {eval["name"]}");

JsonNode dataSource = JsonNode.Parse(File.ReadAllText("examples/ticket-eval-source.json"))!;
dataSource["model"] = model;
dataSource["source"] = new JsonObject
{
    ["type"] = "file_content",
    ["content"] = new JsonArray([.. File.ReadLines("examples/tickets-eval.jsonl").Select(line => JsonNode.Parse(line))]),
};
JsonNode run = Json(await evals.CreateEvaluationRunAsync(evalId, BinaryContent.Create(BinaryData.FromObjectAsJson(new JsonObject { ["data_source"] = dataSource }))));
while (run["status"]!.GetValue<string>() is "queued" or "in_progress")
{
    await Task.Delay(TimeSpan.FromSeconds(1));
    run = Json(await evals.GetEvaluationRunAsync(evalId, run["id"]!.GetValue<string>(), new RequestOptions()));
}

Console.WriteLine($"run {run["id"]} {run["status"]}: {run["result_counts"]!["passed"]} of {run["result_counts"]!["total"]} tickets routed right");

static JsonNode Json(ClientResult result) => JsonNode.Parse(result.GetRawResponse().Content.ToString())!;
