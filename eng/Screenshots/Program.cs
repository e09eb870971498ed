// dotnet run --project eng/Screenshots -- URL OUTPUT.png [--wait-for TEXT] [--width 1440] [--height 900]
// Opens URL in headless Chromium (/usr/bin/chromium unless FTP_CHROMIUM says otherwise), waits until the network is
// idle and TEXT is on the page, and writes a PNG of the viewport.
using Microsoft.Playwright;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Screenshots URL OUTPUT.png [--wait-for TEXT] [--width PX] [--height PX]");
    return 2;
}

var url = args[0];
var output = Path.GetFullPath(args[1]);
string? waitFor = null;
var (width, height) = (1440, 900);
for (var i = 2; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--wait-for": waitFor = args[i + 1]; break;
        case "--width": width = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--height": height = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

using var playwright = await Playwright.CreateAsync();
await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
{
    ExecutablePath = Environment.GetEnvironmentVariable("FTP_CHROMIUM") ?? "/usr/bin/chromium",
    Headless = true,
    // Our machines have no GPU and a closed network: without these Chromium keeps dialling Google's services.
    Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
await page.GotoAsync(url, new PageGotoOptions { WaitUntil = WaitUntilState.NetworkIdle, Timeout = 60_000 });
if (waitFor is not null)
{
    await page.GetByText(waitFor).First.WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
}

// Let the last updates (icons, health badges) settle.
await page.WaitForTimeoutAsync(1500);
Directory.CreateDirectory(Path.GetDirectoryName(output)!);
await page.ScreenshotAsync(new PageScreenshotOptions { Path = output });
Console.WriteLine(output);
return 0;
