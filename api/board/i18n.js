// Every label of the board in Vietnamese (the default) and English.

const LABELS = {
  title: ["Bản đồ thành phố trực tuyến", "Live city board"],
  map: ["Bản đồ các phường, đường, điểm ngập và thiết bị",
        "Map of the wards, roads, flood sites and devices"],
  scenario: ["Kịch bản", "Scenario"],
  noScenario: ["Không chạy kịch bản", "No scenario running"],
  simStopped: ["Mô phỏng đã dừng", "Simulation stopped"],
  noSimulation: ["Chưa có mô phỏng", "No simulation"],
  paused: ["tạm dừng", "paused"],
  simTime: ["Giờ mô phỏng", "Simulated time"],
  now: ["Bây giờ", "Now"],
  live: ["Trực tuyến", "Live"],
  connecting: ["Đang kết nối…", "Connecting…"],
  lost: ["Mất kết nối, đang kết nối lại…", "Connection lost, reconnecting…"],
  langButton: ["English", "Tiếng Việt"],
  alerts: ["Cảnh báo", "Alerts"],
  noAlerts: ["Không có cảnh báo nào", "No active alerts"],
  level_advisory: ["Lưu ý", "Advisory"],
  level_watch: ["Theo dõi", "Watch"],
  level_warning: ["Cảnh báo", "Warning"],
  level_danger: ["Nguy hiểm", "Danger"],
  weather: ["Thời tiết", "Weather"],
  rain: ["Mưa", "Rain"],
  temperature: ["Nhiệt độ", "Temperature"],
  humidity: ["Độ ẩm", "Humidity"],
  wind: ["Gió", "Wind"],
  tide: ["Mực nước sông", "River level"],
  city: ["Toàn thành phố", "Whole city"],
  homesPower: ["Điện các hộ", "Homes' power"],
  meanSpeed: ["Tốc độ trung bình", "Mean speed"],
  congested: ["Đoạn đường ùn tắc", "Congested roads"],
  flooded: ["Điểm ngập cảnh báo", "Flooded sites"],
  devicesOnline: ["Thiết bị hoạt động", "Devices reporting"],
  exhibitors: ["Thiết bị của đơn vị trưng bày", "Exhibitors' devices"],
  noExhibitors: ["Chưa có thiết bị nào được đăng ký", "No device registered yet"],
  more: ["thêm", "more"],
  legend: ["Chú giải", "Legend"],
  traffic: ["Giao thông", "Traffic"],
  cong_free: ["Thông thoáng", "Free flow"],
  cong_slow: ["Chậm", "Slow"],
  cong_heavy: ["Đông", "Heavy"],
  cong_jam: ["Ùn tắc", "Jammed"],
  flood: ["Ngập nước", "Flooding"],
  depth_low: ["Khô / nông", "Dry / shallow"],
  depth_watch: ["Theo dõi", "Watch"],
  depth_warning: ["Cảnh báo", "Warning"],
  depth_danger: ["Nguy hiểm", "Danger"],
  homes: ["Nhà thông minh", "Smart homes"],
  exhibitor: ["Thiết bị trưng bày", "Exhibitor device"],
  greyed: ["Mất tín hiệu / ngoại tuyến", "No signal / offline"],
  state_offline: ["ngoại tuyến", "offline"],
  state_stale: ["mất tín hiệu", "no signal"],
  state_nodata: ["chưa có dữ liệu", "no data yet"],
  warningAt: ["cảnh báo", "warning"],
  power: ["Điện", "Power"],
  phoneTitle: ["Thành phố trực tuyến", "The live city"],
  storyTime: ["Giờ trong câu chuyện", "Story time"],
  datumShort: ["mốc Hòn Dấu", "Hòn Dấu datum"],
  onPhone: ["Xem trên điện thoại", "On your phone"],
  onPhoneHint: ["Quét mã để theo dõi thành phố", "Scan to follow the city"],
  story_day: ["Một ngày bình thường: giao thông, thời tiết và con nước theo nhịp sống hằng ngày.",
              "An ordinary day: traffic, weather and the river follow the city's daily rhythm."],
  story_tide: ["Triều cường dâng cao trên sông Sài Gòn, cống thoát nước chậm lại.",
               "A king tide rises on the Saigon River; the drains slow down."],
  story_storm: ["Mưa lớn gặp triều cường: nước không thoát kịp, đường phố ngập.",
                "A downpour meets the king tide: the water cannot drain, streets flood."],
  story_recovery: ["Mưa tạnh, triều rút: nước rút dần, giao thông trở lại.",
                   "The rain stops, the tide ebbs: the water recedes, traffic returns."],
  silentSince: ["cảm biến im lặng từ {time}", "sensor silent since {time}"],
  atLevelFor: ["ở mức này {duration}", "at this level for {duration}"],
  tideDatum: ["trên mốc Hòn Dấu · báo động 1: {alarm} cm",
              "above the Hòn Dấu datum · alarm 1: {alarm} cm"],
};

const SCENARIOS = {
  "normal-day": ["Một ngày bình thường", "An ordinary day"],
  "rush-hour": ["Giờ cao điểm", "Rush hour"],
  "king-tide-storm": ["Triều cường gặp mưa bão", "King tide meets a storm"],
  "heatwave": ["Nắng nóng kéo dài", "Heatwave"],
  "sensor-faults": ["Diễn tập lỗi cảm biến", "Sensor faults drill"],
};

const KEY = "smartcity.board.lang";
const LANGS = ["vi", "en"];

function initialLang() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGS.includes(asked)) {
    store(asked);
    return asked;
  }
  try {
    const saved = localStorage.getItem(KEY);
    if (LANGS.includes(saved)) return saved;
  } catch {
    // storage may be disabled on a locked-down kiosk: the default is fine
  }
  return "vi";
}

function store(value) {
  try {
    localStorage.setItem(KEY, value);
  } catch {
    // as above
  }
}

export let lang = initialLang();
let formatters = new Map();  // of the current language, by digits or kind

export function setLang(value) {
  lang = LANGS.includes(value) ? value : "vi";
  formatters = new Map();
  store(lang);
  document.documentElement.lang = lang;
}

const index = () => (lang === "en" ? 1 : 0);

export function t(key) {
  const pair = LABELS[key];
  return pair ? pair[index()] : key;
}

export function scenarioName(id) {
  const pair = SCENARIOS[id];
  return pair ? pair[index()] : id;
}

// A place's or device's display name: the English one where there is one.
export function nameOf(thing) {
  if (!thing) return "";
  return (lang === "en" && thing.name_en) || thing.name || thing.device_id || thing.id || "";
}

export function num(value, digits = 1) {
  if (value === undefined || value === null || !Number.isFinite(value)) return "–";
  const key = digits;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.NumberFormat(lang === "en" ? "en-GB" : "vi-VN",
      { maximumFractionDigits: digits, minimumFractionDigits: 0 });
    formatters.set(key, f);
  }
  return f.format(value);
}

const TZ = "Asia/Ho_Chi_Minh";

export function clock(ms, withDate = true) {
  const key = withDate ? "clock+date" : "clock";
  let f = formatters.get(key);
  if (!f) {
    const opts = { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit",
                   hour12: false };
    if (withDate) Object.assign(opts, { day: "2-digit", month: "2-digit", year: "numeric" });
    f = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "vi-VN", opts);
    formatters.set(key, f);
  }
  return f.format(new Date(ms));
}

export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

// Metric names as the board shows them, with their units: the api's catalogue
// (GET /api/v1/metrics), given once it has come.
const METRICS = new Map();

export function setMetrics(list) {
  METRICS.clear();
  for (const m of list) METRICS.set(m.name, m);
}

export function metricLabel(name) {
  const m = METRICS.get(name);
  if (!m) return name;
  return lang === "en" ? m.label_en : m.label_vi;
}

export function unit(name) {
  const m = METRICS.get(name);
  if (!m) return "";
  return lang === "en" ? m.unit : m.unit_vi;
}
