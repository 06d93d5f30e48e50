// The map's geography: a projection that fits the city to the view, and SVG paths of the
// river, canals, ward outlines and road courses (GeoJSON from /api/v1/city/geometry).

const M_PER_DEG = 111_320;

// Equirectangular at the middle latitude, the whole of `bounds` in view, centred; the view
// beyond it is land of the same map, never blank. `scale` is pixels per degree of latitude.
export function projection(bounds, width, height) {
  const midLat = (bounds.north + bounds.south) / 2;
  const kx = Math.cos((midLat * Math.PI) / 180);
  const spanX = (bounds.east - bounds.west) * kx;
  const spanY = bounds.north - bounds.south;
  const scale = Math.min(width / spanX, height / spanY);
  const x0 = width / 2 - ((bounds.east + bounds.west) / 2) * kx * scale;
  const y0 = height / 2 + midLat * scale;
  const project = (lat, lon) => [lon * kx * scale + x0, y0 - lat * scale];
  project.pxPerMetre = scale / M_PER_DEG;
  project.unproject = (x, y) => [(y0 - y) / scale, (x - x0) / (kx * scale)];
  return project;
}

// The box around every ward outline (the city the map is about), with a margin.
export function wardBounds(geo, fallback) {
  let south = Infinity, north = -Infinity, west = Infinity, east = -Infinity;
  for (const f of geo?.features || []) {
    if (f.properties.kind !== "ward") continue;
    for (const [lon, lat] of f.geometry.coordinates[0]) {
      south = Math.min(south, lat); north = Math.max(north, lat);
      west = Math.min(west, lon); east = Math.max(east, lon);
    }
  }
  if (!Number.isFinite(south)) return fallback;
  const padY = (north - south) * 0.02, padX = (east - west) * 0.02;
  return { south: south - padY, north: north + padY, west: west - padX, east: east + padX };
}

export function linePath(project, coords) {
  return coords.map(([lon, lat], i) => {
    const [x, y] = project(lat, lon);
    return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }).join("");
}

export function ringPath(project, ring) {
  return `${linePath(project, ring)}Z`;
}

export function byKind(geo, kind) {
  return (geo?.features || []).filter((f) => f.properties.kind === kind);
}

// The point along a polyline (in pixels) at `share` of its length, and the direction there.
export function along(points, share) {
  const lengths = [];
  let total = 0;
  for (let i = 1; i < points.length; i += 1) {
    const d = Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]);
    lengths.push(d);
    total += d;
  }
  let left = total * share;
  for (let i = 1; i < points.length; i += 1) {
    if (left <= lengths[i - 1] || i === points.length - 1) {
      const s = lengths[i - 1] ? Math.min(1, left / lengths[i - 1]) : 0;
      const [a, b] = [points[i - 1], points[i]];
      return { x: a[0] + s * (b[0] - a[0]), y: a[1] + s * (b[1] - a[1]),
               angle: Math.atan2(b[1] - a[1], b[0] - a[0]) };
    }
    left -= lengths[i - 1];
  }
  return { x: points[0][0], y: points[0][1], angle: 0 };
}
